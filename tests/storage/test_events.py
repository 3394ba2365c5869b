"""The storage events in the journal, from the real commands the units run (``pmemd
make-filesystem``, ``pmemd verify-dax``) on a loop device, with the tree's journald socket
bound by the test:

=====================  ======================================  ==================================
event                  code path                               fields
=====================  ======================================  ==================================
FILESYSTEM_MADE        make-filesystem, a blank device         REGION DEVICE FSTYPE UUID REASON
FILESYSTEM_KEPT        make-filesystem again on the same boot  REGION DEVICE FSTYPE UUID REASON
FILESYSTEM_REFUSED     make-filesystem on a mounted device     REGION DEVICE REASON
DAX_FAILED             verify-dax, nothing mounted             REGION MOUNTPOINT DEVICE REASON
=====================  ======================================  ==================================
"""

from __future__ import annotations

import os
import subprocess
import sys

from pmemd.core.events import MessageId
from tests.conftest import REPO
from tests.journal import bound_journal
from tests.storage.conftest import LoopMachine, sh


def test_made_then_kept_with_region_device_type_and_uuid(loop_machine: LoopMachine) -> None:
    loop_machine.configure("ext4", "recreate", 512)
    with bound_journal(loop_machine.root) as journal:
        made = loop_machine.pmemd("make-filesystem", "data")
        assert made.returncode == 0, made.stderr
        uuid = loop_machine.blkid()["UUID"]
        [event] = journal.entries()
        assert event == {
            "MESSAGE": "region data: made the filesystem on pmem0 "
                       f"({loop_machine.root}/dev/pmem0): the device is blank",
            "MESSAGE_ID": MessageId.FILESYSTEM_MADE.value, "PRIORITY": "5",
            "SYSLOG_IDENTIFIER": "pmemd", "PMEMD_REGION": "data", "PMEMD_DEVICE": "/dev/pmem0",
            "PMEMD_FSTYPE": "ext4", "PMEMD_UUID": uuid, "PMEMD_REASON": "the device is blank"}
        assert event["MESSAGE"] in made.stdout  # not the journal's stream: said there too
        again = loop_machine.pmemd("make-filesystem", "data")
        assert again.returncode == 0, again.stderr
        [kept] = journal.entries()[1:]
        assert kept["MESSAGE_ID"] == MessageId.FILESYSTEM_KEPT.value
        assert (kept["PRIORITY"], kept["PMEMD_UUID"], kept["PMEMD_FSTYPE"]) == ("6", uuid, "ext4")
        assert kept["PMEMD_REASON"] == "pmemd made this ext4 filesystem earlier on this boot"


def test_a_refusal_names_the_region_device_and_reason(loop_machine: LoopMachine) -> None:
    sh("mkfs.xfs", "-q", loop_machine.loop)
    assert loop_machine.mount().returncode == 0
    loop_machine.configure("ext4", "recreate", 512)
    try:
        with bound_journal(loop_machine.root) as journal:
            done = loop_machine.pmemd("make-filesystem", "data")
            assert done.returncode == 1
            [event] = journal.entries()
    finally:
        loop_machine.umount()
    assert event["MESSAGE_ID"] == MessageId.FILESYSTEM_REFUSED.value
    assert (event["PRIORITY"], event["PMEMD_REGION"], event["PMEMD_DEVICE"]) == (
        "3", "data", "/dev/pmem0")
    assert event["PMEMD_REASON"].startswith(f"pmem0 is mounted at {loop_machine.mountpoint}")
    assert event["PMEMD_REASON"] in done.stderr


def test_a_mount_without_dax_names_the_mountpoint(loop_machine: LoopMachine) -> None:
    loop_machine.configure("xfs", "recreate", 512)
    with bound_journal(loop_machine.root) as journal:
        done = loop_machine.pmemd("verify-dax", "data")
        assert done.returncode == 1
        [event] = journal.entries()
    assert {k: v for k, v in event.items() if k.startswith(("PMEMD_", "MESSAGE_ID"))} == {
        "MESSAGE_ID": MessageId.DAX_FAILED.value, "PMEMD_REGION": "data",
        "PMEMD_MOUNTPOINT": "/pmem", "PMEMD_DEVICE": "/dev/pmem0",
        "PMEMD_REASON": "/pmem is not mounted"}
    assert event["MESSAGE"] == "region data: /pmem is not a DAX mount: /pmem is not mounted"


def as_unit(machine: LoopMachine, *args: str) -> tuple[int, str]:
    """``pmemd ARGS`` with standard output and error connected to "the journal" (a file
    that ``$JOURNAL_STREAM`` names, as systemd names a unit's stream): its exit status and
    what it wrote there."""
    output = machine.root / "stream"
    with output.open("w") as stream:
        info = os.fstat(stream.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
        done = subprocess.run([sys.executable, "-m", "pmemd", *args, "--root",
                               str(machine.root)], stdout=stream, stderr=stream, cwd=REPO,
                              env=env, check=False, timeout=120)
    return done.returncode, output.read_text()


def test_under_systemd_the_message_is_the_journal_entry_alone(loop_machine: LoopMachine) -> None:
    """Under a unit the structured entry is the message; it is not said a second time as a
    plain line on the unit's stream (made, refused, not DAX)."""
    loop_machine.configure("ext4", "recreate", 512)
    with bound_journal(loop_machine.root) as journal:
        status, printed = as_unit(loop_machine, "make-filesystem", "data")
        assert status == 0, printed
        [made] = journal.events(MessageId.FILESYSTEM_MADE)
        assert printed.startswith("ran: mkfs.ext4") and "made the filesystem" not in printed
        assert made["MESSAGE"].startswith("region data: made the filesystem on pmem0")
        status, printed = as_unit(loop_machine, "verify-dax", "data")
        assert (status, printed) == (1, "")
        assert journal.events(MessageId.DAX_FAILED)
        assert loop_machine.mount().returncode == 0
        try:
            status, printed = as_unit(loop_machine, "make-filesystem", "data")
        finally:
            loop_machine.umount()
        assert (status, printed) == (1, "")
        [refused] = journal.events(MessageId.FILESYSTEM_REFUSED)
        assert "never formats a mounted device" in refused["MESSAGE"]
