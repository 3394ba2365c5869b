"""``pmemd make-filesystem`` and ``pmemd verify-dax`` with real mkfs.ext4, mkfs.xfs, blkid,
mount and loop devices (see conftest.py for how the loop device becomes region 'data')."""

from __future__ import annotations

import pytest

from tests.storage.conftest import LoopMachine, sh


def test_recreate_makes_xfs_once_per_boot(loop_machine: LoopMachine) -> None:
    loop_machine.configure("xfs", "recreate", 512)
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 0, done.stderr
    assert "ran: mkfs.xfs -f -q -d su=2m,sw=1,agcount=2" in done.stdout
    assert "made the filesystem on pmem0" in done.stdout and "the device is blank" in done.stdout
    first = loop_machine.blkid()
    assert first["TYPE"] == "xfs"
    # Started again on the same boot (a unit restart): what pmemd made is kept.
    again = loop_machine.pmemd("make-filesystem", "data")
    assert again.returncode == 0, again.stderr
    assert "kept" in again.stdout and "earlier on this boot" in again.stdout
    assert loop_machine.blkid()["UUID"] == first["UUID"]
    # The next boot: emulated pmem is DRAM, recreate makes a fresh filesystem.
    loop_machine.new_boot()
    fresh = loop_machine.pmemd("make-filesystem", "data")
    assert fresh.returncode == 0, fresh.stderr
    assert "on-boot: recreate replaces xfs" in fresh.stdout
    assert loop_machine.blkid()["UUID"] != first["UUID"]


@pytest.mark.parametrize("loop_machine", [(512, 512), (1024, 1024)], indirect=True)
def test_xfs_has_a_2m_stripe_unit_and_reflink_as_the_kernel_allows(
        loop_machine: LoopMachine) -> None:
    loop_machine.configure("xfs", "recreate", loop_machine.image.stat().st_size >> 20)
    assert loop_machine.pmemd("make-filesystem", "data").returncode == 0
    info = sh("xfs_info", loop_machine.loop).stdout
    assert "sunit=512 " in info and "swidth=512 blks" in info  # 2 MiB in 4 KiB blocks
    assert "reflink=1" in info  # the tree's kernel is 6.1
    loop_machine.machine.osrelease.write_text("5.15.0-91-generic\n")
    loop_machine.new_boot()
    assert loop_machine.pmemd("make-filesystem", "data").returncode == 0
    assert "reflink=0" in sh("xfs_info", loop_machine.loop).stdout


@pytest.mark.parametrize("loop_machine", [(256, 256)], indirect=True)
def test_ext4_on_a_small_device_gets_4k_blocks(loop_machine: LoopMachine) -> None:
    """mkfs.ext4 alone picks 1 KiB blocks under 512 MiB, and DAX needs 4 KiB."""
    loop_machine.configure("ext4", "recreate", 256)
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 0, done.stderr
    probe = loop_machine.blkid()
    assert probe["TYPE"] == "ext4" and probe["BLOCK_SIZE"] == "4096"


def test_keep_keeps_the_data_written_before(loop_machine: LoopMachine) -> None:
    loop_machine.configure("ext4", "keep", 512)
    made = loop_machine.pmemd("make-filesystem", "data")
    assert made.returncode == 0 and "the device is blank" in made.stdout, made.stderr
    assert loop_machine.mount().returncode == 0
    (loop_machine.mountpoint / "survivor").write_text("written before the reboot\n")
    loop_machine.umount()
    uuid = loop_machine.blkid()["UUID"]
    loop_machine.new_boot()
    kept = loop_machine.pmemd("make-filesystem", "data")
    assert kept.returncode == 0, kept.stderr
    assert "kept the filesystem" in kept.stdout and "ran:" not in kept.stdout
    assert f"keeps the existing ext4 filesystem (UUID {uuid}) pmemd made on the previous " \
           "boot (journalctl -b " in kept.stdout
    assert loop_machine.blkid()["UUID"] == uuid
    assert loop_machine.mount().returncode == 0
    assert (loop_machine.mountpoint / "survivor").read_text() == "written before the reboot\n"


def test_keep_refuses_a_foreign_filesystem_with_the_evidence(loop_machine: LoopMachine) -> None:
    sh("mkfs.ext4", "-q", "-F", "-L", "precious", loop_machine.loop)
    before = loop_machine.blkid()
    loop_machine.configure("xfs", "keep", 512)
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 1
    assert "on-boot: keep, and the device holds ext4, not xfs" in done.stderr
    assert f"UUID={before['UUID']}" in done.stderr and "LABEL=precious" in done.stderr
    assert "wipefs -a" in done.stderr
    assert loop_machine.blkid() == before


def test_keep_refuses_data_blkid_cannot_name(loop_machine: LoopMachine) -> None:
    with loop_machine.image.open("r+b") as handle:
        handle.seek(4096)
        handle.write(b"an application's own pmem layout")
    loop_machine.configure("xfs", "keep", 512)
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 1
    assert "holds data that blkid cannot name" in done.stderr
    assert "byte 0x1000 is not zero" in done.stderr
    assert "pmemd's boot history has no earlier boot" in done.stderr
    assert loop_machine.blkid() == {}


@pytest.mark.parametrize("on_boot", ["recreate", "keep"])
def test_a_mounted_device_is_never_formatted(loop_machine: LoopMachine, on_boot: str) -> None:
    sh("mkfs.xfs", "-q", loop_machine.loop)
    assert loop_machine.mount().returncode == 0
    before = loop_machine.blkid()
    loop_machine.configure("ext4", on_boot, 512)
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 1
    assert f"pmem0 is mounted at {loop_machine.mountpoint} (xfs)" in done.stderr
    assert "never formats a mounted device" in done.stderr
    loop_machine.umount()
    assert loop_machine.blkid() == before


def test_a_device_whose_number_is_not_the_regions_is_refused(loop_machine: LoopMachine) -> None:
    (loop_machine.machine.sys_block / "pmem0" / "dev").write_text("259:7\n")
    loop_machine.configure("xfs", "recreate", 512)
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 1
    assert "but sysfs says pmem0 of region 'data' is 259:7: not the region's device" in done.stderr
    assert loop_machine.blkid() == {}


@pytest.mark.parametrize("loop_machine", [(512, 640)], indirect=True)
def test_a_device_larger_than_the_region_is_refused(loop_machine: LoopMachine) -> None:
    loop_machine.configure("xfs", "recreate", 512)
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 1
    assert "holds 640 MiB, region 'data' is 512 MiB: not the region's device" in done.stderr
    assert loop_machine.blkid() == {}


def test_a_region_at_another_address_has_no_device(loop_machine: LoopMachine) -> None:
    loop_machine.configure("xfs", "recreate", 512, offset="1536M")
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 1
    assert "region 'data' (0x60000000-0x7fffffff) has no device" in done.stderr
    assert "lacks memmap=512M!1536M" in done.stderr
    assert loop_machine.blkid() == {}


def test_dry_run_decides_but_writes_nothing(loop_machine: LoopMachine) -> None:
    loop_machine.configure("xfs", "recreate", 512)
    done = loop_machine.pmemd("make-filesystem", "data", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert (f"would run: mkfs.xfs -f -q -d su=2m,sw=1,agcount=2 {loop_machine.root}/dev/pmem0"
            in done.stdout)
    assert loop_machine.blkid() == {}


def test_a_region_with_config_problems_is_not_touched(loop_machine: LoopMachine) -> None:
    loop_machine.configure("xfs", "recreate", 512, mountpoint="/usr/pmem")
    done = loop_machine.pmemd("make-filesystem", "data")
    assert done.returncode == 3
    assert "regions[0].filesystem.mountpoint" in done.stderr
    assert loop_machine.blkid() == {}


def test_xfs_that_silently_lost_dax_fails_verification(loop_machine: LoopMachine) -> None:
    """A loop device cannot do DAX: xfs mounts anyway ("Turning off DAX"), exactly the case
    verify-dax exists for. (ext4 refuses such a mount outright.)"""
    loop_machine.configure("xfs", "recreate", 512)
    assert loop_machine.pmemd("make-filesystem", "data").returncode == 0
    mounted = loop_machine.mount("dax=always")
    assert mounted.returncode == 0, mounted.stderr
    loop_machine.configure("xfs", "recreate", 512, mountpoint=str(loop_machine.mountpoint))
    done = loop_machine.pmemd("verify-dax", "data")
    assert done.returncode == 1
    assert f"{loop_machine.mountpoint} (xfs on pmem0) is mounted without DAX" in done.stderr
    assert "xfs turns DAX off when it cannot use it" in done.stderr


def test_verify_dax_fails_when_nothing_is_mounted(loop_machine: LoopMachine) -> None:
    loop_machine.configure("xfs", "recreate", 512)
    done = loop_machine.pmemd("verify-dax", "data")
    assert done.returncode == 1 and "pmemd: /pmem is not mounted" in done.stderr

