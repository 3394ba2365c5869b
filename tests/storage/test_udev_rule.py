"""systemd/60-pmemd.rules run by the real udev (``udevadm test``) on the example sysfs trees.

udevadm reads /sys, its rules directories, and writes /dev and /run/udev, so each run
happens in a private mount namespace: the machine tree's sysfs is bound over /sys, the rule
over /etc/udev/rules.d, and /dev and /run are fresh tmpfs mounts — nothing on the host is
read as a device or written. SYSTEMD_DEVICE_VERIFY_SYSFS=0 lets sd-device accept a /sys
that is not sysfs (systemd's own tests do the same).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pmemd.core.units import link_name
from pmemd.machine.root import DAX_LINK_DIR, PMEM_LINK_DIR, Machine
from pmemd.machine.sysfs import read_devices
from tests.conftest import MACHINES, REPO
from tests.machine.modes import make_devdax, make_fsdax, raw_machine

RULE = REPO / "systemd" / "60-pmemd.rules"

SCRIPT = r"""
set -e
mount --bind "$1/sys" /sys
mount --bind "$1/rules" /etc/udev/rules.d
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev
mknod -m 666 /dev/null c 1 3
for device in $2; do
    echo "=== $device"
    case $device in /*) path=$device ;; *) path=/sys/block/$device ;; esac
    udevadm test --action=add "$path" 2>/dev/null | grep '^DEVLINKS=' || true
done
echo "=== links"
for link in /dev/disk/by-pmem-address/* /dev/dax/by-pmem-address/*; do
    [ -e "$link" ] || [ -L "$link" ] || continue
    echo "$link -> $(readlink "$link")"
done
"""


def udev_links(tree: Path, devices: list[str], tmp_path: Path) -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root (a private mount namespace)")
    for tool in ("udevadm", "unshare"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    shutil.copytree(tree / "sys", tmp_path / "sys", symlinks=True)
    (tmp_path / "rules").mkdir()
    shutil.copyfile(RULE, tmp_path / "rules" / RULE.name)
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", SCRIPT, "udev-test",
         str(tmp_path), " ".join(devices)],
        capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "SYSTEMD_DEVICE_VERIFY_SYSFS": "0"})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("tree", ["server-16g-2pmem", "server-16g-2pmem-reordered"])
def test_each_pmem_device_gets_its_address_link(tree: str, tmp_path: Path) -> None:
    facts = read_devices(Machine(MACHINES / tree))
    out = udev_links(MACHINES / tree, [d.name for d in facts.devices], tmp_path)
    for device in facts.devices:
        assert device.range is not None
        link = link_name(PMEM_LINK_DIR, device.range.start)
        section = out.split(f"=== {device.name}\n", 1)[1].split("===", 1)[0]
        assert link in section.split("DEVLINKS=", 1)[1].split()
        assert f"{link} -> ../../{device.name}" in out
    assert out.count(" -> ") == len(facts.devices)


def test_a_device_in_sector_mode_gets_no_link(tmp_path: Path) -> None:
    """pmemNs (btt, sector mode) cannot do DAX: the rule leaves it alone."""
    tree = tmp_path / "machine"
    shutil.copytree(MACHINES / "server-16g-memmap", tree, symlinks=True)
    block = tree / "sys" / "block"
    target = os.readlink(block / "pmem0")
    (block / "pmem0").unlink()
    real = (block / target).resolve()
    renamed = real.with_name("pmem0s")
    real.rename(renamed)
    (block / "pmem0s").symlink_to(target.replace("pmem0", "pmem0s"))
    (renamed / "uevent").write_text("MAJOR=259\nMINOR=0\nDEVNAME=pmem0s\nDEVTYPE=disk\n")
    out = udev_links(tree, ["pmem0s"], tmp_path / "udev")
    assert "by-pmem-address" not in out


def test_an_fsdax_disk_behind_its_info_block_gets_the_namespace_address(tmp_path: Path
                                                                        ) -> None:
    """After ndctl create-namespace -m fsdax --map=dev, pmem0 hangs off pfn0.1 whose own
    resource is the data start (10 MiB in); the link still names the namespace's start, so
    the region's units find it in every mode."""
    machine = raw_machine(tmp_path)
    make_fsdax(machine)
    out = udev_links(machine.root, ["pmem0"], tmp_path / "udev")
    assert f"{PMEM_LINK_DIR}/0x40000000 -> ../../pmem0" in out
    assert "0x40a00000" not in out


def test_a_devdax_char_device_gets_its_namespace_address(tmp_path: Path) -> None:
    machine = raw_machine(tmp_path)
    make_devdax(machine)
    out = udev_links(machine.root, ["/sys/bus/dax/devices/dax0.0"], tmp_path / "udev")
    assert f"{DAX_LINK_DIR}/0x40000000 -> ../../dax0.0" in out
    assert "by-pmem-address/0x40a00000" not in out
