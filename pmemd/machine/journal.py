"""Send :mod:`pmemd.core.events` to the journal with its native protocol: one datagram of
``KEY=value`` lines to journald's socket (a value with a newline in the binary-safe form:
the key, a newline, the value's length as 64-bit little-endian, the value, a newline); an
entry too large for a datagram goes as a sealed memfd passed with ``SCM_RIGHTS``.

An event is a record of what pmemd did, never part of doing it: with no journal (tests,
containers, a machine tree under ``--root``) or any failure to send, nothing happens.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import struct
from collections.abc import Iterable

from pmemd.core.events import Event
from pmemd.machine.root import Machine

log = logging.getLogger(__name__)

_TOO_LARGE = (errno.EMSGSIZE, errno.ENOBUFS)
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def encode_entry(fields: Iterable[tuple[str, str]]) -> bytes:
    """The native protocol's datagram for ``fields``."""
    parts = []
    for key, value in fields:
        data = value.encode("utf-8", "surrogateescape")
        if b"\n" in data:
            parts.append(key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            parts.append(key.encode() + b"=" + data + b"\n")
    return b"".join(parts)


def send_event(machine: Machine, event: Event) -> bool:
    """``event`` in the machine's journal; whether journald took it."""
    path = machine.journal_socket
    if not path.is_socket():
        return False
    data = encode_entry(event.entry())
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(data, str(path))
            except OSError as err:
                if err.errno not in _TOO_LARGE:
                    raise
                _send_memfd(sock, str(path), data)
    except OSError as err:
        log.debug("%s: not sent to the journal: %s", event.message_id.name, err)
        return False
    return True


def _send_memfd(sock: socket.socket, path: str, data: bytes) -> None:
    """A large entry: journald reads it from a sealed memfd sent alone."""
    fd = os.memfd_create("pmemd-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
        sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))], 0,
                     path)
    finally:
        os.close(fd)
