"""A machine whose pmem region's device is a real loop device.

The machine tree is examples/machines/qemu-2g-pmem (a region at 1G whose namespace is
pmem0), resized to the test's region, with ``/dev/pmem0`` a link to a loop device over a
sparse image and ``sys/block/pmem0/dev`` that loop device's number, so pmemd's identity
checks (address, size, device number) pass for the loop device and nothing else.
``/proc/self`` is the real one: pmemd sees real mounts. Needs root and loop devices.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pmemd.machine.root import Machine
from tests.conftest import MACHINES, Completed, run_pmemd

MiB = 1 << 20


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)


@dataclass
class LoopMachine:
    machine: Machine
    loop: str  # /dev/loopN
    image: Path
    mountpoint: Path  # where tests mount the device themselves

    @property
    def root(self) -> Path:
        return self.machine.root

    def configure(self, fs_type: str, on_boot: str, size_mib: int, *, offset: str = "1G",
                  mountpoint: str = "/pmem") -> None:
        """Region 'data' (by default where the tree's namespace is: 1G)."""
        self.machine.config.write_text(
            "version: 1\nregions:\n  - name: data\n"
            f"    size: {size_mib}M\n    offset: {offset}\n"
            f"    filesystem: {{type: {fs_type}, mountpoint: {mountpoint}, "
            f"on-boot: {on_boot}}}\n")

    def pmemd(self, *args: str) -> Completed:
        return run_pmemd(*args, "--root", str(self.root))

    def blkid(self) -> dict[str, str]:
        done = sh("blkid", "-p", "-o", "export", self.loop, check=False)
        return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)

    def mount(self, *options: str) -> subprocess.CompletedProcess[str]:
        argv = ["mount", *(["-o", ",".join(options)] if options else []), self.loop,
                str(self.mountpoint)]
        return sh(*argv, check=False)

    def umount(self) -> None:
        sh("umount", str(self.mountpoint), check=False)

    def new_boot(self, *, pmem: bool = True) -> str:
        """A reboot, as pmemd sees it: a new boot id, /run empty again; ``pmem=False``: a
        boot without the region's option — its range is ordinary RAM (iomem says System RAM,
        no nvdimm region), and there is no pmem device. Returns the new boot id."""
        shutil.rmtree(self.machine.filesystems_made, ignore_errors=True)
        boot_id = str(uuid.uuid4())
        self.machine.boot_id.write_text(boot_id + "\n")
        for entry in (self.machine.sys_nd_devices / "region0", self.machine.sys_block / "pmem0"):
            _show(entry, pmem)
        self.machine.iomem.write_text(self.iomem if pmem else self.iomem_without_pmem)
        return boot_id

    @property
    def iomem(self) -> str:
        return (MACHINES / "qemu-2g-pmem" / "proc" / "iomem").read_text()

    @property
    def iomem_without_pmem(self) -> str:
        """This boot's map without the region's option: its range is System RAM."""
        lines = [line.replace("Persistent Memory (legacy)", "System RAM")
                 for line in self.iomem.splitlines(keepends=True)
                 if "namespace0.0" not in line]
        return "".join(lines)

    def fill(self, byte: bytes, size: int = 4 * MiB) -> None:
        """Write ``byte`` over the device's start, as leftover RAM would look."""
        with self.image.open("r+b") as handle:
            handle.write(byte * size)

    def history(self) -> str:
        return self.machine.boot_history.read_text()


def _show(entry: Path, visible: bool) -> None:
    """Make a sysfs entry appear or disappear (it is kept aside, renamed)."""
    aside = entry.with_name(f".{entry.name}-absent")
    if visible and aside.is_symlink():
        aside.rename(entry)
    elif not visible and entry.is_symlink():
        entry.rename(aside)


def _resize(machine: Machine, size: int, dev: str) -> None:
    """Region, namespace and block device of the tree (written through sysfs's links)."""
    for name in ("region0", "namespace0.0"):
        (machine.sys_nd_devices / name / "size").write_text(f"{size}\n")
    block = machine.sys_block / "pmem0"
    (block / "size").write_text(f"{size // 512}\n")
    (block / "dev").write_text(f"{dev}\n")


@pytest.fixture
def loop_machine(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LoopMachine]:
    """``@pytest.mark.parametrize("loop_machine", [(size_mib, device_mib)], indirect=True)``;
    default 512 MiB region and device."""
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        pytest.skip("needs root and losetup (real loop devices)")
    size_mib, device_mib = getattr(request, "param", (512, 512))
    image = tmp_path / "pmem.img"
    with image.open("wb") as handle:
        handle.truncate(device_mib * MiB)
    attached = sh("losetup", "--find", "--show", str(image), check=False)
    if attached.returncode != 0:
        pytest.skip(f"no loop device: {attached.stderr.strip()}")
    loop = attached.stdout.strip()
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    try:
        root = tmp_path / "root"
        shutil.copytree(MACHINES / "qemu-2g-pmem", root, symlinks=True)
        machine = Machine(root)
        rdev = Path(loop).stat().st_rdev
        _resize(machine, size_mib * MiB, f"{os.major(rdev)}:{os.minor(rdev)}")
        machine.dev_node("pmem0").parent.mkdir(parents=True, exist_ok=True)
        machine.dev_node("pmem0").symlink_to(loop)
        shutil.rmtree(machine.mountinfo.parent)
        machine.mountinfo.parent.symlink_to(Machine().mountinfo.parent)  # real mounts
        machine.config.parent.mkdir(parents=True, exist_ok=True)
        machine.boot_id.parent.mkdir(parents=True, exist_ok=True)
        machine.boot_id.write_text(f"{uuid.uuid4()}\n")
        yield LoopMachine(machine, loop, image, mountpoint)
    finally:
        sh("umount", str(mountpoint), check=False)
        sh("losetup", "-d", loop, check=False)
