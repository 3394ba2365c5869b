"""pmemd-reconcile.service on a real system: a Debian 12 guest (qemu, booting from its own
GRUB) with pmemd's .deb. With `boot.reboot: auto` the unit writes pmemd's drop-in, runs the
real update-grub and reboots the guest once through systemd; when that boot comes up
without the options (here: a one-time GRUB entry without them, set with grub-reboot) the
unit reports degraded and never reboots again; a boot of the default entry then converges.
The config writes the default entry directly (``boot.trial: never``): with a trial, the
boot that lacks the options is a failed trial (tests/vm/test_trial.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.vm.conftest import boot_guest, vm_artifacts, vm_image, vm_timing  # noqa: F401
from tests.vm.image import Image, ensure_with_debs
from tests.vm.qemu import Guest
from tests.vm.steps import boot_once_without_options

pytestmark = pytest.mark.vm

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
MEMMAP = "memmap=512M!1G"
CONFIG = """\
version: 1
boot:
  bootloader: auto
  reboot: auto
  trial: never
regions:
  - name: data
    size: 512M
    offset: 1G
"""
def build_deb(directory: Path) -> Path:
    done = subprocess.run([str(REPO / "packaging/build-deb")], capture_output=True, text=True,
                          env={"PATH": SYSTEM_PATH, "PMEMD_DEB_OUT": str(directory)},
                          timeout=1200, check=False)
    assert done.returncode == 0, done.stderr
    [deb] = directory.glob("pmemd_*_all.deb")
    return deb


def unit_state(guest: Guest) -> list[str]:
    return guest.run("systemctl show -P ActiveState pmemd-reconcile.service\n"
                     "systemctl show -P Result pmemd-reconcile.service\n").check().stdout.split()


def test_one_automatic_reboot_then_degraded_never_a_loop(
        vm_image: Image, tmp_path: Path, boot_guest: Callable[..., Guest],  # noqa: F811
        vm_timing: Callable[[str, float], None]) -> None:  # noqa: F811
    image = ensure_with_debs([build_deb(tmp_path)])
    guest = boot_guest(image.path)
    first = guest.wait_boot()
    vm_timing("boot 1", first.seconds)
    # The package's own /etc/pmemd.yaml has no regions: the boot's reconcile had nothing to do.
    assert unit_state(guest) == ["active", "success"]
    assert MEMMAP not in guest.run("cat /proc/cmdline\n").check().stdout

    # An entry of the admin's own without pmemd's options, booted once via grub-reboot.
    guest.run(boot_once_without_options("plain"), name="plain-entry").check()
    config = guest.put("pmemd.yaml", CONFIG)
    second = guest.reboot(f"install -m 0644 {config} /etc/pmemd.yaml\n"
                          "systemctl restart --no-block pmemd-reconcile.service\n",
                          name="reconcile-auto", timeout=600)
    vm_timing("reconcile + automatic reboot", second.seconds)
    assert guest.boots == 2
    assert MEMMAP not in guest.run("cat /proc/cmdline\n").check().stdout  # 'plain' booted
    journal = guest.run("journalctl -b -1 -u pmemd-reconcile.service --no-pager -o cat\n"
                        ).check().stdout
    assert "Ran: /usr/sbin/update-grub" in journal, journal
    assert "rebooting (boot.reboot: auto" in journal, journal
    # This boot's reconcile: degraded, the likely cause named, no second reboot.
    assert unit_state(guest) == ["failed", "exit-code"]
    degraded = guest.run("cat /run/pmemd/degraded\n").check().stdout
    assert "will not reboot again" in degraded and "grub-reboot" in degraded, degraded
    assert guest.run("test -e /run/reboot-required\n").status == 0
    again = guest.run("systemctl restart pmemd-reconcile.service || true\n"
                      "journalctl -b -u pmemd-reconcile.service --no-pager -o cat\n").check()
    assert again.stdout.count("State: degraded") == 2, again.stdout
    assert guest.boots == 2  # still the same boot: no loop

    # The admin reboots; GRUB's default entry carries the options: converged.
    third = guest.reboot()
    vm_timing("boot 3 (default entry)", third.seconds)
    assert MEMMAP in guest.run("cat /proc/cmdline\n").check().stdout.split()
    assert unit_state(guest) == ["active", "success"]
    assert guest.run("test -b /dev/pmem0 && ! test -e /run/pmemd/degraded && "
                     "! test -e /run/reboot-required\n").status == 0
    assert guest.boots == 3
