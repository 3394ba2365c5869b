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
from pmemd.machine.root import PMEM_LINK_DIR, Machine
from pmemd.machine.sysfs import read_devices
from tests.conftest import MACHINES, REPO

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
    udevadm test --action=add "/sys/block/$device" 2>/dev/null | grep '^DEVLINKS=' || true
done
echo "=== links"
for link in /dev/disk/by-pmem-address/*; do
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
