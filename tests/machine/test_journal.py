"""pmemd's sender of journal entries (the native protocol) against a real datagram socket
bound where the re-rooted machine's journald would be; and no journal is no error."""

from __future__ import annotations

import socket
from pathlib import Path

from pmemd.core.events import Event, Field, MessageId, Priority
from pmemd.machine.journal import send_event
from pmemd.machine.root import Machine
from tests.journal import bound_journal

MULTI_LINE = "the bootloader tool said:\n  error: no space left\n\nand nothing else"


def event(reason: str) -> Event:
    return Event(MessageId.FILESYSTEM_REFUSED, Priority.ERR, "region data: refused",
                 ((Field.REGION, "data"), (Field.DEVICE, "/dev/pmem0"),
                  (Field.REASON, reason), (Field.UUID, "")))


def test_the_fields_arrive_exactly_with_a_multi_line_value(tmp_path: Path) -> None:
    with bound_journal(tmp_path) as journal:
        assert send_event(Machine(tmp_path), event(MULTI_LINE + " = ümlaut"))
        assert journal.entries() == [{
            "MESSAGE": "region data: refused",
            "MESSAGE_ID": "b04f1af9c779416c8253f158d5b33d6c",
            "PRIORITY": "3",
            "SYSLOG_IDENTIFIER": "pmemd",
            "PMEMD_REGION": "data",
            "PMEMD_DEVICE": "/dev/pmem0",
            "PMEMD_REASON": MULTI_LINE + " = ümlaut",
        }]  # an empty field (PMEMD_UUID) is left out


def test_an_entry_too_large_for_a_datagram_goes_as_a_memfd(tmp_path: Path) -> None:
    large = "x" * (4 << 20)  # more than any datagram the socket takes
    with bound_journal(tmp_path) as journal:
        assert send_event(Machine(tmp_path), event(large))
        [entry] = journal.entries()
        assert entry["PMEMD_REASON"] == large and entry["PMEMD_REGION"] == "data"


def test_no_journal_is_no_error(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    assert not send_event(machine, event("x"))  # no socket at all
    machine.journal_socket.parent.mkdir(parents=True)
    machine.journal_socket.write_text("")  # a file where the socket would be
    assert not send_event(machine, event("x"))


def test_a_socket_nobody_listens_on_is_no_error(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    machine.journal_socket.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(machine.journal_socket))
    # journald gone: the socket file is left behind, sending is refused
    assert not send_event(machine, event("x"))
