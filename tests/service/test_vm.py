"""The hardened pmemd.service does its job on a real system: a Debian 12 guest (qemu) with
pmemd's .deb installed, systemd as PID 1, the system bus and polkitd.

Every change goes through ``busctl`` to io.pmemd1, so it runs inside pmemd.service's
sandbox (started by D-Bus activation): Apply writes the bootloader's files and runs
update-grub; after the reboot, Unmount and Mount stop and start the generator's mount
unit through pystemd; Format makes a filesystem on the real /dev/pmem0, also while mounted
(with force); SetConfig replaces /etc/pmemd.yaml and reloads systemd. An unprivileged user
is refused by the real polkit. The unit's live exposure and capabilities are checked too.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.vm.image import Image, ensure_with_debs
from tests.vm.qemu import Guest

pytestmark = pytest.mark.vm

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# ext4: pmemd's mkfs.xfs options fail on a 512 MiB device (reported apart).
CONFIG = """\
version: 1
boot:
  bootloader: update-grub
regions:
  - name: data
    size: 512M
    offset: 1G
    filesystem:
      type: ext4
      mountpoint: /pmem
      on-boot: recreate
"""
MANAGER = "io.pmemd1 /io/pmemd1 io.pmemd1.Manager"
DATA = "io.pmemd1 /io/pmemd1/region/data io.pmemd1.Region"


def build_deb(directory: Path) -> Path:
    """pmemd's package from this tree (what ``make deb`` builds)."""
    done = subprocess.run([str(REPO / "packaging/build-deb")], capture_output=True, text=True,
                          env={"PATH": SYSTEM_PATH, "PMEMD_DEB_OUT": str(directory)},
                          timeout=1200, check=False)
    assert done.returncode == 0, done.stderr
    [deb] = directory.glob("pmemd_*_all.deb")
    return deb


def busctl(*args: str) -> str:
    # update-grub alone takes ~12 s under TCG: more than busctl's default 25 s with the rest
    return "busctl --no-pager --timeout=600 " + " ".join(args) + "\n"


def uuid(guest: Guest) -> str:
    return guest.run("blkid -p -o value -s UUID /dev/pmem0\n").check().stdout.strip()


def test_the_sandboxed_service_applies_mounts_and_formats(
        vm_image: Image, tmp_path: Path, boot_guest: Callable[..., Guest],
        vm_timing: Callable[[str, float], None]) -> None:
    image = ensure_with_debs([build_deb(tmp_path)])
    if image.build_seconds is not None:
        vm_timing("image with pmemd's .deb", image.build_seconds)
    guest = boot_guest(image.path)
    guest.wait_boot()
    config = guest.put("pmemd.yaml", CONFIG)

    # The unit as systemd sees it on this machine: sandboxed, one capability.
    security = guest.run("systemd-analyze security --no-pager pmemd.service\n").check()
    match = re.search(r"Overall exposure level for pmemd\.service: ([0-9.]+)", security.stdout)
    assert match is not None and float(match[1]) <= 4.0, security.stdout

    # Apply: bus activation starts pmemd.service; reconcile runs update-grub in the sandbox.
    applied = guest.run(f"install -m 0644 {config} /etc/pmemd.yaml\n"
                        + busctl("call", MANAGER, "Apply", "b", "false")
                        + "grep -F 'memmap=512M!1G' /boot/grub/grub.cfg | head -n 1\n"
                        + "systemctl show -p ActiveState -p MainPID pmemd.service\n"
                        + "grep -E '^Cap(Eff|Bnd)' /proc/$(systemctl show -p MainPID "
                          "--value pmemd.service)/status\n",
                        name="apply", timeout=600).check()
    assert applied.stdout.startswith('sas "reboot-required"'), applied.stdout
    assert "memmap=512M!1G" in applied.stdout and "ActiveState=active" in applied.stdout
    assert "CapBnd:\t0000000000200200" in applied.stdout  # CAP_SYS_ADMIN, CAP_LINUX_IMMUTABLE

    # Not root: the real polkit says no, and nothing changes.
    denied = guest.run("runuser -u nobody -- " + busctl("call", MANAGER, "SetConfig", "sb",
                                                         "'version: 1'", "false")
                       + "cmp /etc/pmemd.yaml " + config + "\n", name="nobody")
    assert denied.status != 0 and "Access denied" in denied.stderr, denied

    guest.reboot()
    booted = guest.run("cat /proc/cmdline\n"
                       + busctl("get-property", DATA, "State", "Dax", "Device")
                       + busctl("get-property", MANAGER, "Trial")).check()
    assert "memmap=512M!1G" in booted.stdout.split()
    assert 's "ready"\nb true\ns "/dev/pmem0"' in booted.stdout, booted.stdout
    # Apply armed a trial boot (boot.trial: auto), which pmemd-trial.service verified
    assert booted.stdout.endswith('s "committed"\n'), booted.stdout

    # Unmount / Mount: the generator's mount unit, stopped and started through pystemd.
    unmounted = guest.run(busctl("call", DATA, "Unmount")
                          + "! findmnt /pmem\n", name="unmount").check()
    assert unmounted.status == 0
    before = uuid(guest)
    guest.run(busctl("call", DATA, "Format", "b", "false"), name="format").check()
    formatted = uuid(guest)
    assert formatted and formatted != before  # a fresh filesystem on the real device
    mounted = guest.run(busctl("call", DATA, "Mount")
                        + "findmnt -n -o FSTYPE,OPTIONS /pmem\n", name="mount").check()
    assert mounted.stdout.startswith("ext4") and "dax" in mounted.stdout

    # Format while mounted: refused without force; with force unmounted, made, mounted.
    busy = guest.run(busctl("call", DATA, "Format", "b", "false"), name="busy")
    assert busy.status != 0 and "mounted at /pmem" in busy.stderr
    guest.run(busctl("call", DATA, "Format", "b", "true")
              + "findmnt /pmem\n", name="force", timeout=600).check()
    assert uuid(guest) != formatted

    # SetConfig writes /etc/pmemd.yaml from the sandbox and reloads systemd.
    reset = guest.run(busctl("call", MANAGER, "SetConfig", "sb",
                             "\"$(cat " + config + ")\"", "false")
                      + f'test "$(cat /etc/pmemd.yaml)" = "$(cat {config})"\n'
                      + "test -f /etc/pmemd.yaml.pmemd-bak\n"
                      + "! systemctl is-failed -q pmemd.service\n"
                      + "journalctl -b -u pmemd.service --no-pager -o cat\n",
                      name="set-config").check()
    assert "Traceback" not in reset.stdout
    assert guest.poweroff() == 0
