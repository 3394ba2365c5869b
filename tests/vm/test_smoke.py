"""The harness itself, end to end: the reference procedure done by hand in a real guest.

Boot the image from its own GRUB, put ``memmap=512M!1G`` on the command line through the
guest's ``/etc/default/grub`` and ``update-grub``, let the guest reboot itself, and check
what a user would: the option is on ``/proc/cmdline``, ``/dev/pmem0`` is there and DAX
capable, an XFS mounted with ``-o dax`` runs with ``dax=always``, and data written to it
reads back after a remount.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import pytest

from tests.vm.image import Image
from tests.vm.qemu import Guest
from tests.vm.steps import add_kernel_options

pytestmark = pytest.mark.vm

MEMMAP = "memmap=512M!1G"

MOUNT_DAX = """
mkfs.xfs -f -q /dev/pmem0
mkdir -p /pmem
mount -o dax /dev/pmem0 /pmem
grep ' /pmem ' /proc/self/mountinfo
"""


def mount_options(mountinfo_line: str) -> set[str]:
    """A mountinfo line's per-mount and super options together."""
    mount_part, _, super_part = mountinfo_line.partition(" - ")
    per_mount = mount_part.split()[5]
    super_options = super_part.split()[2]
    return set(per_mount.split(",")) | set(super_options.split(","))


def test_memmap_through_grub_gives_a_dax_mount_after_reboot(
        vm_image: Image, boot_guest: Callable[..., Guest],
        vm_timing: Callable[[str, float], None]) -> None:
    started = time.monotonic()
    guest = boot_guest(vm_image.path)
    first = guest.wait_boot()
    vm_timing("boot 1 to multi-user", first.seconds)
    assert first.number == 1
    assert MEMMAP not in guest.run("cat /proc/cmdline").check().stdout.split()
    assert guest.run("test -e /dev/pmem0").status == 1

    grub = guest.run(add_kernel_options(MEMMAP), name="add-memmap").check()
    assert MEMMAP in grub.stdout, "update-grub did not put the option into grub.cfg"

    second = guest.reboot()
    vm_timing("boot 2 (after an in-guest reboot) to multi-user", second.seconds)
    assert second.number == 2

    assert MEMMAP in guest.run("cat /proc/cmdline").check().stdout.split()
    device = guest.run("test -b /dev/pmem0\n"
                       "cat /sys/block/pmem0/queue/dax\n"
                       "cat /sys/bus/nd/devices/namespace0.0/resource\n"
                       "cat /sys/block/pmem0/size\n", name="device").check()
    dax, resource, sectors = device.stdout.split()
    assert dax == "1"
    assert int(resource, 16) == 1 << 30
    assert int(sectors) * 512 == 512 << 20

    mounted = guest.run(MOUNT_DAX, name="mount-dax").check()
    assert "dax=always" in mount_options(mounted.stdout.strip())

    token = secrets.token_hex(16)
    readback = guest.run(f"echo {token} > /pmem/token\n"
                         "umount /pmem\n"
                         "mount -o dax /dev/pmem0 /pmem\n"
                         "cat /pmem/token\n", name="write-read").check()
    assert readback.stdout.strip() == token

    assert guest.boots == 2
    vm_timing("smoke test in total (boots, steps, update-grub)", time.monotonic() - started)
