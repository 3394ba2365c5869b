"""The changes the service makes, through the same functions as ``pmemd reconcile`` and the
make-filesystem unit: Apply on a systemd-boot tree, Format on a real block device (a loop
device standing where the region's /dev/pmem0 is), and every refusal that protects data."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_pmemd
from tests.service.conftest import CONFIG, KERNEL, MACHINE_ID, make_machine
from tests.service.harness import TIMEOUT, PrivateBus, Reply, Running, call, serving
from tests.service.loops import PMEM0, Loop, put_device

MANAGER = "/io/pmemd1"
DATA = "/io/pmemd1/region/data"
REGION_SIZE = 512 << 20
# ext4: mkfs.xfs 6.1 refuses pmemd's xfs options (-d su=2m) on 512 MiB ("Log size must be
# at least 64MB"), a limit of pmemd.core.makefs's mkfs_argv reported apart.
EXT4_CONFIG = CONFIG.replace("type: xfs", "type: ext4")


def manager(bus: PrivateBus, member: str, signature: str = "", *body: object) -> Reply:
    return call(bus.address, MANAGER, "io.pmemd1.Manager", member, signature, body)


def region(bus: PrivateBus, member: str, signature: str = "", *body: object) -> Reply:
    return call(bus.address, DATA, "io.pmemd1.Region", member, signature, body)


def state(bus: PrivateBus) -> str:
    reply = call(bus.address, MANAGER, "org.freedesktop.DBus.Properties", "Get", "ss",
                 ["io.pmemd1.Manager", "State"])
    value: str = reply.ok()[0].value
    return value


# --- Apply --------------------------------------------------------------------------------


@pytest.fixture
def boot_root(workdir: Path) -> Path:
    return make_machine(workdir, systemd_boot=True)


@pytest.fixture
def boot_service(bus: PrivateBus, boot_root: Path) -> Iterator[Running]:
    with serving(bus, boot_root) as running:
        yield running


def test_apply_dry_run_says_what_reconcile_would_write_and_writes_nothing(
        bus: PrivateBus, boot_service: Running, boot_root: Path) -> None:
    entry = boot_root / f"boot/loader/entries/{MACHINE_ID}-{KERNEL}.conf"
    before = entry.read_text()
    result, report = manager(bus, "Apply", "b", True).ok()
    assert result == "changes-pending"
    text = "\n".join(report)
    assert f"Would write {boot_root}/etc/kernel/cmdline:" in text
    assert "+options    root=UUID=0f7c2a51-1d9e-4b8e-a4c3-6b0f3d1e2a77 ro console=ttyS0 " \
           "memmap=512M!1G memmap=256M!1536M" in text
    # the same report as the CLI's dry run
    cli = run_pmemd("reconcile", "--dry-run", "--root", str(boot_root))
    assert cli.stdout.splitlines() == report
    assert entry.read_text() == before
    assert not (boot_root / "etc/kernel/cmdline").exists()
    assert not (boot_root / "var/lib/pmemd").exists()


def test_apply_writes_the_boot_entries_and_the_state_changes(
        bus: PrivateBus, boot_service: Running, boot_root: Path) -> None:
    assert state(bus) == "changes-pending"
    result, report = manager(bus, "Apply", "b", False).ok()
    assert result == "reboot-required"
    entry = (boot_root / f"boot/loader/entries/{MACHINE_ID}-{KERNEL}.conf").read_text()
    assert "memmap=512M!1G memmap=256M!1536M\n" in entry
    assert "memmap=256M!1536M" in (boot_root / "etc/kernel/cmdline").read_text()
    owned = json.loads((boot_root / "var/lib/pmemd/state.json").read_text())["owned"]
    assert "memmap=256M!1536M" in owned
    assert (boot_root / "run/reboot-required").exists()
    assert any(line.startswith("Wrote ") for line in report)
    # what the service now says is what pmemd plan says: the next boot carries it
    assert state(bus) == "reboot-required"
    plan = json.loads(run_pmemd("plan", "--root", str(boot_root), "--json").stdout)
    assert plan["state"] == "reboot-required"
    assert json.loads(manager(bus, "GetPlan").ok()[0]) == plan


def test_apply_while_another_change_holds_the_lock_is_busy_naming_it(
        bus: PrivateBus, boot_service: Running, boot_root: Path) -> None:
    """pmemd's one lock is shared with the commands: while a `pmemd reconcile` (here, this
    test) holds it, Apply and SetConfig are refused at once with Busy, naming the holder,
    and write nothing."""
    import os

    from pmemd.machine.lock import change_lock
    from pmemd.machine.root import Machine

    entry = boot_root / f"boot/loader/entries/{MACHINE_ID}-{KERNEL}.conf"
    before = entry.read_text()
    with change_lock(Machine(boot_root), "pmemd reconcile", wait=0):
        for reply in (manager(bus, "Apply", "b", False),
                      manager(bus, "SetConfig", "sb", CONFIG, False)):
            assert reply.error == "io.pmemd1.Error.Busy", reply
            assert f"holds its lock (pid {os.getpid()}: pmemd reconcile)" in reply.text
    assert entry.read_text() == before and not (boot_root / "var/lib/pmemd").exists()
    assert manager(bus, "Apply", "b", False).ok()[0] == "reboot-required"  # free again


def test_apply_without_a_bootloader_is_a_clear_error(bus: PrivateBus, service: Running,
                                                     root: Path) -> None:
    reply = manager(bus, "Apply", "b", False)
    assert reply.error == "io.pmemd1.Error.Machine"
    assert reply.text.startswith("no supported bootloader found (")
    assert not (root / "var/lib/pmemd").exists()


# --- Format -------------------------------------------------------------------------------


def test_format_makes_a_fresh_filesystem_on_the_regions_device(
        bus: PrivateBus, workdir: Path, loops: list[Loop]) -> None:
    root = make_machine(workdir, EXT4_CONFIG)
    loops.append(Loop(workdir / "pmem0.img", REGION_SIZE))
    put_device(root, loops[0], mounted=False)
    with serving(bus, root) as service:
        assert call(bus.address, DATA, "org.freedesktop.DBus.Properties", "Get", "ss",
                    ["io.pmemd1.Region", "State"]).ok()[0].value == "not-mounted"
        region(bus, "Format", "b", False).ok()
        assert loops[0].blkid("TYPE") == "ext4"
        assert loops[0].blkid("BLOCK_SIZE") == "4096"  # what DAX needs
        first = loops[0].blkid("UUID")
        assert (root / "run/pmemd/filesystems/data").read_text().strip() == first
        region(bus, "Format", "b", False).ok()  # fresh again, even though made this boot
        assert loops[0].blkid("TYPE") == "ext4" and loops[0].blkid("UUID") != first
    assert "region data: made the filesystem on pmem0" in service.stderr


def test_format_refuses_a_mounted_region_without_force(
        bus: PrivateBus, workdir: Path, loops: list[Loop]) -> None:
    root = make_machine(workdir, CONFIG)
    loops.append(Loop(workdir / "pmem0.img", REGION_SIZE))
    subprocess.run(["mkfs.ext4", "-q", "-F", loops[0].device], check=True, timeout=TIMEOUT)
    uuid = loops[0].blkid("UUID")
    put_device(root, loops[0], mounted=True)
    with serving(bus, root):
        reply = region(bus, "Format", "b", False)
        assert reply.error == "io.pmemd1.Error.Busy"
        assert "region 'data' is mounted at /pmem; unmount it first" in reply.text
        # with force, it must unmount first: not possible on a tree (--root)
        reply = region(bus, "Format", "b", True)
        assert reply.error == "io.pmemd1.Error.NotSupported"
        assert "cannot stop pmem.mount" in reply.text
    assert loops[0].blkid("UUID") == uuid  # untouched


@pytest.mark.parametrize("foreign", ["other-device", "other-size"])
def test_format_never_touches_a_device_that_is_not_the_regions(
        bus: PrivateBus, workdir: Path, loops: list[Loop], foreign: str) -> None:
    root = make_machine(workdir, CONFIG)
    loops.append(Loop(workdir / "pmem0.img", REGION_SIZE))
    size = REGION_SIZE if foreign == "other-device" else REGION_SIZE // 2
    loops.append(Loop(workdir / "other.img", size))
    subprocess.run(["mkfs.ext4", "-q", "-F", loops[1].device], check=True, timeout=TIMEOUT)
    uuid = loops[1].blkid("UUID")
    put_device(root, loops[0], mounted=False)
    # /dev/pmem0 in the tree is in fact another device
    (root / "dev/pmem0").unlink()
    os.mknod(root / "dev/pmem0", stat.S_IFBLK | 0o660, loops[1].rdev)
    if foreign == "other-size":
        (root / PMEM0 / "dev").write_text(loops[1].dev + "\n")
    with serving(bus, root):
        reply = region(bus, "Format", "b", True)
    assert reply.error == "io.pmemd1.Error.Refused", reply
    assert "not the region's device" in reply.text
    assert loops[1].blkid("UUID") == uuid and loops[1].blkid("TYPE") == "ext4"


def test_mount_and_unmount_need_the_running_system(bus: PrivateBus, service: Running) -> None:
    for member in ("Mount", "Unmount"):
        reply = region(bus, member)
        assert reply.error == "io.pmemd1.Error.NotSupported"
        assert "pmem.mount: pmemd works on a machine tree (--root)" in reply.text


# --- one change at a time -----------------------------------------------------------------


def test_a_second_change_while_one_runs_is_busy_not_queued(root: Path) -> None:
    """Two changes never interleave: while one runs (here held at a barrier inside the
    service's worker), the next is refused with io.pmemd1.Error.Busy, naming the first.
    The operations need no bus: they are the service's work whatever carries the calls."""
    import threading

    from pmemd.errors import Busy
    from pmemd.machine.root import Machine
    from pmemd.machine.systemctl import Systemd
    from pmemd.service.operations import Operations
    from pmemd.service.polkit import Caller

    release = threading.Event()

    async def run() -> str:
        ops = Operations(Machine(root), None, Systemd(live=False), on_change=lambda _: None)
        first = asyncio.ensure_future(ops.exclusive(
            "Format", Caller(":1.41"), lambda: release.wait(TIMEOUT)))
        await asyncio.sleep(0)  # let the first one start (no time passes)
        try:
            await ops.exclusive("Apply", Caller(":1.42"), lambda: None)
        except Busy as err:
            message = str(err)
        else:
            message = "not refused"
        release.set()
        await first
        await ops.exclusive("Apply", Caller(":1.42"), lambda: None)  # free again
        ops.close()
        return message

    assert asyncio.run(run()) == ("Format (requested by :1.41) is in progress; try again when "
                                  "it finishes")


def test_set_config_and_apply_says_the_config_was_saved_when_apply_fails(
        bus: PrivateBus, service: Running, root: Path) -> None:
    from tests.service.conftest import CONVERGED

    reply = manager(bus, "SetConfig", "sb", CONVERGED, True)  # no bootloader in this tree
    assert reply.error == "io.pmemd1.Error.Machine"
    assert reply.text.startswith(f"{root}/etc/pmemd.yaml was replaced, but applying it "
                                 "failed: no supported bootloader found")
    assert (root / "etc/pmemd.yaml").read_text() == CONVERGED


def test_set_config_and_apply_in_one_call(bus: PrivateBus, boot_service: Running,
                                          boot_root: Path) -> None:
    larger = CONFIG.replace("size: 256M", "size: 384M")
    assert manager(bus, "SetConfig", "sb", larger, True).ok() == ["reboot-required"]
    assert (boot_root / "etc/pmemd.yaml").read_text() == larger
    entry = (boot_root / f"boot/loader/entries/{MACHINE_ID}-{KERNEL}.conf").read_text()
    assert "memmap=512M!1G memmap=384M!1536M\n" in entry
