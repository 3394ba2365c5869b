"""mountinfo, and whether a region's mount is really DAX."""

from __future__ import annotations

import pytest

from pmemd.core.devices import PmemDevice, dax_problem
from pmemd.core.mounts import MountEntry, MountinfoError, mount_at, parse_mountinfo
from pmemd.core.ranges import MemRange

# From a Debian 12 guest (examples/machines/qemu-2g-memmap-captured) plus an xfs that lost
# DAX and a second mount over /pmem1.
XFS_OPTIONS = "inode64,logbufs=8,logbsize=32k,noquota"
MOUNTINFO = f"""\
27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
163 27 259:0 / /pmem0 rw,relatime shared:60 - xfs /dev/pmem0 rw,attr2,dax=always,{XFS_OPTIONS}
168 27 259:1 / /pmem1 rw,relatime shared:90 - ext4 /dev/pmem1 rw,dax=always
170 27 259:2 / /pmem2 rw,relatime shared:91 - xfs /dev/pmem2 rw,attr2,{XFS_OPTIONS}
171 27 259:3 / /old\\040style rw,relatime - ext4 /dev/pmem3 rw,dax
172 168 0:40 / /pmem1 rw,relatime shared:92 - tmpfs tmpfs rw,inode64
"""


def device(n: int, dax: bool | None = True) -> PmemDevice:
    return PmemDevice(f"pmem{n}", f"namespace{n}.0", f"region{n}",
                      MemRange.sized((n + 1) << 30, 1 << 30), 1 << 30, f"259:{n}", dax, "memory")


def test_mountinfo_fields() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert mounts[1] == MountEntry(
        dev="259:0", mountpoint="/pmem0", fstype="xfs", source="/dev/pmem0",
        options=("rw", "relatime"),
        super_options=("rw", "attr2", "dax=always", "inode64", "logbufs=8", "logbsize=32k",
                       "noquota"))
    assert mounts[4].mountpoint == "/old style"


def test_bad_mountinfo_line_is_a_clear_error() -> None:
    with pytest.raises(MountinfoError, match="line 2 is not in the kernel's format"):
        parse_mountinfo("27 1 254:1 / / rw - ext4 /dev/vda1 rw\ngarbage\n")


def test_the_last_mount_at_a_path_is_what_is_visible() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    found = mount_at(mounts, "/pmem1")
    assert found is not None and found.fstype == "tmpfs"
    assert mount_at(mounts, "/nothing") is None


@pytest.mark.parametrize(("mountpoint", "n", "dax", "problem"), [
    ("/pmem0", 0, True, None),
    ("/old style", 3, True, None),  # the legacy 'dax' option of older kernels
    ("/pmem2", 2, True, "is mounted without DAX: the kernel shows 'rw,attr2,inode64,logbufs=8,"
                        "logbsize=32k,noquota', no dax=always; xfs turns DAX off"),
    ("/pmem0", 0, False, "pmem0 does not support DAX (queue/dax is 0; namespace mode memory)"),
    ("/pmem1", 1, True, "/pmem1 holds tmpfs (device 0:40), not pmem1 (device 259:1)"),
])
def test_dax_problem(mountpoint: str, n: int, dax: bool, problem: str | None) -> None:
    mount = mount_at(parse_mountinfo(MOUNTINFO), mountpoint)
    assert mount is not None
    found = dax_problem(mount, device(n, dax))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found

