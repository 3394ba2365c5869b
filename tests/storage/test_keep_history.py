"""``on-boot: keep`` across boots, with real mkfs.xfs/mkfs.ext4, blkid, mount and a loop
device as the region's pmem (see conftest.py): the boot history pmemd keeps decides whether
what the memory holds can be the user's.

A boot is simulated the way pmemd sees one: a new boot id, an empty /run and, for a boot
without the region's option, a memory map and sysfs without the pmem range. What runs on a
real boot runs here: ``pmemd reconcile`` (it records the boot, whatever else fails) and
``pmemd make-filesystem`` (the region's unit)."""

from __future__ import annotations

import json

from pmemd.machine.history import read_history
from tests.storage.conftest import LoopMachine, sh


def journal_id(boot_id: str) -> str:
    return boot_id.replace("-", "")


def boot_without_the_region(loop_machine: LoopMachine) -> str:
    """A boot whose command line lacks the option: its reconcile records it (it fails
    after that here: the tree has no bootloader)."""
    boot_id = loop_machine.new_boot(pmem=False)
    done = loop_machine.pmemd("reconcile")
    assert f"boot {boot_id} -\n" in loop_machine.history(), done.stderr
    return boot_id


def test_the_first_boot_as_pmem_formats_leftover_ram(loop_machine: LoopMachine) -> None:
    """The bug the guest showed: memory that was RAM on the previous boot holds leftovers,
    which keep used to refuse as unknown data — so keep never worked the first time."""
    loop_machine.configure("xfs", "keep", 512)
    previous = boot_without_the_region(loop_machine)
    loop_machine.new_boot()
    loop_machine.fill(b"\xff")  # what a process left in that RAM
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 0, done.stderr
    assert "ran: mkfs.xfs" in done.stdout
    assert ("made the filesystem on pmem0 ("
            in done.stdout), done.stdout
    assert (f"on-boot: keep, but its range was ordinary RAM, not pmem, on the previous boot "
            f"(journalctl -b {journal_id(previous)}), so what the memory holds cannot be user "
            "data (blkid -p finds no signature, but byte 0x0 is not zero)") in done.stdout
    assert done.stderr == ""  # nothing the user kept was lost: not a warning
    assert loop_machine.blkid()["TYPE"] == "xfs"
    assert loop_machine.mount().returncode == 0

    plan = loop_machine.pmemd("plan")
    assert "Filesystems on this boot (pmemd make-filesystem, boot history):" in plan.stdout
    assert "data    made xfs" in plan.stdout and "was ordinary RAM, not pmem" in plan.stdout
    assert "what it kept" not in plan.stdout  # no warning
    document = json.loads(loop_machine.pmemd("plan", "--json").stdout)
    [made] = document["filesystems"]
    assert (made["region"], made["action"], made["basis"], made["uuid"]) == (
        "data", "made", "was-ram", loop_machine.blkid()["UUID"])


def test_a_filesystem_lost_at_a_power_cycle_is_made_again_and_said_loudly(
        loop_machine: LoopMachine) -> None:
    loop_machine.configure("xfs", "keep", 512)
    first = loop_machine.pmemd("make-filesystem", "data")
    assert first.returncode == 0 and "the device is blank" in first.stdout, first.stderr
    lost = loop_machine.blkid()["UUID"]
    previous = loop_machine.machine.boot_id.read_text().strip()
    # Power off and on: emulated pmem is DRAM, what comes back is noise.
    loop_machine.new_boot()
    loop_machine.fill(b"\xa5\x3c\x0f")
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("warning: region data: made the filesystem on pmem0"), \
        done.stderr
    assert f"the xfs filesystem (UUID {lost}) pmemd made here on the previous boot " \
           f"(journalctl -b {journal_id(previous)}) is gone (blkid -p finds no signature, " \
           "but byte 0x0 is not zero)" in done.stderr
    assert "its content was lost, as emulated pmem's is at a power cycle" in done.stderr
    assert "<4>" not in done.stderr  # the journal's priority prefix only on the journal
    made = loop_machine.blkid()
    assert made["TYPE"] == "xfs" and made["UUID"] != lost

    plan = loop_machine.pmemd("plan")
    assert "! region 'data': what it kept is lost; pmemd made a new, empty xfs filesystem " \
           "at this boot" in plan.stdout, plan.stdout
    document = json.loads(loop_machine.pmemd("plan", "--json").stdout)
    assert [w["code"] for w in document["warnings"] if w["region"] == "data"] == [
        "filesystem-lost"]


def test_a_valid_filesystem_after_a_boot_as_ram_is_not_trusted(
        loop_machine: LoopMachine) -> None:
    """A boot without the option (an admin's GRUB entry) used the memory as RAM; the
    filesystem's signature may survive that, its content does not. Never mount it."""
    loop_machine.configure("ext4", "keep", 512)
    assert loop_machine.pmemd("make-filesystem", "data").returncode == 0
    assert loop_machine.mount().returncode == 0
    (loop_machine.mountpoint / "precious").write_text("kept across warm reboots\n")
    loop_machine.umount()
    before = loop_machine.blkid()
    previous = boot_without_the_region(loop_machine)
    loop_machine.new_boot()
    assert loop_machine.blkid() == before  # it looks perfectly valid
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 0, done.stderr
    assert f"ordinary RAM, not pmem, on the previous boot (journalctl -b " \
           f"{journal_id(previous)})" in done.stderr
    assert f"the signature it shows (blkid -p: UUID={before['UUID']}" in done.stderr
    assert "TYPE=ext4" in done.stderr and "cannot be trusted" in done.stderr
    assert done.stderr.startswith("warning: ")
    assert loop_machine.blkid()["UUID"] != before["UUID"]
    assert loop_machine.mount().returncode == 0
    assert not (loop_machine.mountpoint / "precious").exists()
    plan = loop_machine.pmemd("plan")
    assert "! region 'data': what it kept is gone: the previous boot used its memory as RAM; " \
           "pmemd made a new, empty ext4 filesystem at this boot" in plan.stdout


def test_pmemds_filesystem_is_kept_and_the_history_says_so(loop_machine: LoopMachine) -> None:
    loop_machine.configure("xfs", "keep", 512)
    first = loop_machine.machine.boot_id.read_text().strip()
    assert loop_machine.pmemd("make-filesystem", "data").returncode == 0
    uuid = loop_machine.blkid()["UUID"]
    second = loop_machine.new_boot()
    kept = loop_machine.pmemd("make-filesystem", "data")
    assert kept.returncode == 0 and "kept the filesystem" in kept.stdout, kept.stderr
    again = loop_machine.history()
    assert loop_machine.pmemd("make-filesystem", "data").returncode == 0  # a unit restart
    assert loop_machine.history() == again  # recorded once per boot
    history = read_history(loop_machine.machine)
    assert [b.boot_id for b in history.boots] == [first, second]
    assert all(b.pmem is not None and len(b.pmem) == 1 for b in history.boots)
    assert [(f.boot_id, f.action, f.basis.value, f.uuid) for f in history.filesystems] == [
        (first, "made", "blank", uuid), (second, "kept", "kept-own", uuid)]


def test_another_filesystem_where_pmemds_was_is_refused(loop_machine: LoopMachine) -> None:
    loop_machine.configure("xfs", "keep", 512)
    assert loop_machine.pmemd("make-filesystem", "data").returncode == 0
    sh("mkfs.ext4", "-q", "-F", "-L", "mine", loop_machine.loop)  # the admin, by hand
    before = loop_machine.blkid()
    loop_machine.new_boot()
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 1
    assert "on-boot: keep, and the device holds ext4, not xfs" in done.stderr
    assert "LABEL=mine" in done.stderr and "wipefs -a" in done.stderr
    assert loop_machine.blkid() == before


def test_unknown_data_on_memory_that_was_pmem_without_pmemds_filesystem_is_refused(
        loop_machine: LoopMachine) -> None:
    """pmem on the previous boot, but nothing pmemd made there: the data may be an
    application's own layout on the raw device."""
    loop_machine.configure("xfs", "keep", 512)
    loop_machine.pmemd("reconcile")  # records this boot: the range is pmem
    loop_machine.new_boot()
    loop_machine.fill(b"\x5a")
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 1
    assert "holds data that blkid cannot name, not xfs" in done.stderr
    assert "boot history" not in done.stderr  # it is not the history's doing
    assert loop_machine.blkid() == {}


def test_reconcile_records_the_boot_first_even_with_an_invalid_config(
        loop_machine: LoopMachine) -> None:
    loop_machine.configure("xfs", "keep", 512, mountpoint="/usr/pmem")
    assert loop_machine.pmemd("reconcile", "--dry-run").returncode == 3
    assert not loop_machine.machine.boot_history.exists()  # a dry run writes nothing
    done = loop_machine.pmemd("reconcile")
    assert done.returncode == 3
    boot_id = loop_machine.machine.boot_id.read_text().strip()
    assert loop_machine.history() == f"pmemd-boot-history 1\nboot {boot_id} 0x40000000+0x20000000\n"
    assert oct(loop_machine.machine.boot_history.stat().st_mode & 0o777) == "0o644"
