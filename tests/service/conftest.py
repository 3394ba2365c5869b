"""Fixtures for the D-Bus tests: a private bus with pmemd's shipped policy, a fake machine
(a copy of examples/machines/qemu-2g-pmem: memmap=512M!1G booted, /dev/pmem0 mounted with
DAX at /pmem) with a config, and ``pmemd serve`` on that bus over that machine."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MACHINES
from tests.service.harness import PrivateBus, Running, serving, world_readable_dir
from tests.service.loops import Loop

# Only "data": what the machine already runs, so the plan is converged.
CONVERGED = """\
version: 1
regions:
  - name: data
    size: 512M
    offset: 1G
    filesystem:
      type: xfs
      mountpoint: /pmem
"""
# Region "data" is booted and mounted; "fast-log" (a '-' in its name: path fast_2dlog)
# is not on the running command line yet.
CONFIG = CONVERGED + """\
  - name: fast-log
    size: 256M
    offset: 1536M
    filesystem:
      type: ext4
      mountpoint: /pmem-log
"""


MACHINE_ID = "0f7c2a511d9e4b8ea4c36b0f3d1e2a77"
KERNEL = "6.1.0-27-amd64"
# A systemd-boot type #1 entry for the machine's kernel, with its running command line.
BLS_ENTRY = f"""\
title      Debian GNU/Linux 12 (bookworm)
version    {KERNEL}
machine-id {MACHINE_ID}
linux      /{MACHINE_ID}/{KERNEL}/linux
initrd     /{MACHINE_ID}/{KERNEL}/initrd.img-{KERNEL}
options    root=UUID=0f7c2a51-1d9e-4b8e-a4c3-6b0f3d1e2a77 ro console=ttyS0 memmap=512M!1G
"""


def make_machine(directory: Path, config: str = CONFIG, *, systemd_boot: bool = False) -> Path:
    """The qemu-2g-pmem tree with ``config``; ``systemd_boot``: with systemd-boot's
    loader.conf and one type #1 entry, so that Apply has a bootloader to write."""
    root = directory / "machine"
    shutil.copytree(MACHINES / "qemu-2g-pmem", root, symlinks=True)
    (root / "etc").mkdir()
    (root / "etc/pmemd.yaml").write_text(config)
    if systemd_boot:
        entries = root / "boot/loader/entries"
        entries.mkdir(parents=True)
        (root / "boot/loader/loader.conf").write_text("timeout 3\n")
        (entries / f"{MACHINE_ID}-{KERNEL}.conf").write_text(BLS_ENTRY)
    return root


def record_failed_trial(root: Path, reason: str, bootloader: str = "update-grub") -> None:
    """pmemd's state as pmemd-trial.service leaves it when a trial boot did not come up."""
    state = root / "var/lib/pmemd/state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({
        "version": 1, "bootloader": bootloader, "owned": [], "retired": [],
        "pending": None, "degraded": None,
        "trial": {"state": "failed", "digest": "d1", "options": ["memmap=256M!1536M"],
                  "armed_on": "boot-a", "booted": "boot-b", "reason": reason}}))


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = world_readable_dir("pmemd-dbus-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def root(workdir: Path) -> Path:
    return make_machine(workdir)


@pytest.fixture
def bus(workdir: Path) -> Iterator[PrivateBus]:
    started = PrivateBus(workdir).start()
    yield started
    started.stop()


@pytest.fixture
def loops(workdir: Path) -> Iterator[list[Loop]]:
    """Loop devices the test makes (in ``workdir``), detached afterwards."""
    made: list[Loop] = []
    yield made
    for loop in made:
        loop.detach()


@pytest.fixture
def service(bus: PrivateBus, root: Path) -> Iterator[Running]:
    with serving(bus, root) as running:
        yield running


# The end-to-end guest's fixtures (tests/vm), for test_vm.py.
from tests.vm.conftest import boot_guest, vm_artifacts, vm_image, vm_timing  # noqa: E402, F401
