"""Loop devices standing in for a machine tree's /dev/pmem0: a real block device with a
real filesystem for Format, wired into the tree (sysfs dev, a device node, mountinfo)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.service.harness import TIMEOUT

PMEM0 = "sys/devices/platform/e820_pmem/ndbus0/region0/namespace0.0/block/pmem0"


class Loop:
    def __init__(self, backing: Path, size: int) -> None:
        with backing.open("wb") as handle:
            handle.truncate(size)
        self.device = subprocess.run(["losetup", "--find", "--show", str(backing)],
                                     capture_output=True, text=True, check=True,
                                     timeout=TIMEOUT).stdout.strip()
        self.rdev = os.stat(self.device).st_rdev

    @property
    def dev(self) -> str:
        return f"{os.major(self.rdev)}:{os.minor(self.rdev)}"

    def blkid(self, tag: str) -> str:
        return subprocess.run(["blkid", "-p", "-o", "value", "-s", tag, self.device],
                              capture_output=True, text=True, check=False,
                              timeout=TIMEOUT).stdout.strip()

    def detach(self) -> None:
        subprocess.run(["losetup", "-d", self.device], check=False, timeout=TIMEOUT)


def put_device(root: Path, loop: Loop, *, mounted: bool) -> None:
    """Make the tree's pmem0 the loop device: sysfs dev, a /dev/pmem0 node with its number,
    and mountinfo with or without it mounted at /pmem."""
    (root / PMEM0 / "dev").write_text(loop.dev + "\n")
    (root / "dev").mkdir(exist_ok=True)
    os.mknod(root / "dev/pmem0", stat.S_IFBLK | 0o660, loop.rdev)
    mountinfo = root / "proc/self/mountinfo"
    lines = [line for line in mountinfo.read_text().splitlines() if " /pmem " not in line]
    if mounted:
        lines.append(f"60 28 {loop.dev} / /pmem rw,relatime shared:40 - xfs {loop.device} "
                     "rw,attr2,dax=always,inode64,noquota")
    mountinfo.write_text("\n".join(lines) + "\n")
