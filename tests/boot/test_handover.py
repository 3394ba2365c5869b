"""A change of backend (``boot.bootloader`` edited, or a machine moved from GRUB to
systemd-boot): pmemd's options come off the backend its state records as their writer
before the new one writes them, so no bootloader configuration is left carrying options
pmemd no longer tracks. A Fedora machine with grubby (the recording stand-in) and BLS
entries in /boot, and systemd-boot with its ESP at /efi (kernel-install's files)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pmemd.boot.reconcile import reconcile
from pmemd.core.plan import PlanState
from pmemd.errors import ConfigError, NoBootloader
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.machine.state import read_state
from tests.boot.conftest import (
    BOOTLOADER_FIXTURES,
    config_text,
    options_lines,
    snapshot,
    standin_calls,
    with_standins,
    write_config,
)
from tests.conftest import run_pmemd

Tree = Callable[..., Path]
M1, M2 = "memmap=4G!12G", "memmap=2G!10G"
REGIONS = (("data", "4G", "12G"), ("cache", "2G", "10G"))
GRUB_ENTRIES = "boot/loader/entries"  # Fedora's BLS entries, which grubby edits
SD_ENTRIES = "efi/loader/entries"  # systemd-boot's, on the ESP mounted at /efi


def with_options(root: Path, entries: str) -> list[bool]:
    """For each entry: does it carry both of pmemd's options?"""
    return [M1 in line.split() and M2 in line.split() for line in options_lines(root, entries)]


def carries_none(root: Path, entries: str) -> bool:
    return not any(a.startswith("memmap=") for line in options_lines(root, entries)
                   for a in line.split())


@pytest.fixture
def fedora(tree: Tree) -> Iterator[Path]:
    """Fedora 39 with grubby, and systemd-boot installed next to it on /efi; pmemd has
    written its options through grubby."""
    root = tree("fedora39", config=config_text(*REGIONS, bootloader="grubby"))
    systemd_boot = BOOTLOADER_FIXTURES / "debian12-systemd-boot"
    shutil.copytree(systemd_boot / "boot/efi", root / "efi")
    (root / "etc/kernel").mkdir(exist_ok=True)
    shutil.copy(systemd_boot / "etc/kernel/cmdline", root / "etc/kernel/cmdline")
    with with_standins(root, "grubby") as chroot:
        reconcile(Machine(chroot), Runner())
        assert all(with_options(chroot, GRUB_ENTRIES)) and carries_none(chroot, SD_ENTRIES)
        assert read_state(Machine(chroot)).bootloader == "grubby"
        yield chroot


def test_a_new_backend_takes_over_and_the_old_one_keeps_nothing(fedora: Path) -> None:
    write_config(fedora, config_text(*REGIONS, bootloader="kernel-install"))
    runner = Runner()
    outcome = reconcile(Machine(fedora), runner)
    # grubby first, with exactly pmemd's options; then kernel-install's files
    assert runner.recorded == [("chroot", str(fedora), "/sbin/grubby", "--update-kernel=ALL",
                                "--no-etc-grub-update", f"--remove-args={M2} {M1}")]
    assert carries_none(fedora, GRUB_ENTRIES)
    assert "memmap" not in (fedora / "etc/default/grub").read_text()
    assert all(with_options(fedora, SD_ENTRIES))
    assert (fedora / "etc/kernel/cmdline").read_text().split()[-2:] == [M2, M1]
    state = read_state(Machine(fedora))
    assert (state.bootloader, state.owned) == ("kernel-install", (M2, M1))
    assert outcome.handover is not None and outcome.handover.removed == (M2, M1)
    assert outcome.state is PlanState.REBOOT_REQUIRED  # the running kernel lacks them
    assert not outcome.stampable

    before = snapshot(fedora)
    runner = Runner()
    again = reconcile(Machine(fedora), runner)
    assert runner.recorded == [] and again.handover is None
    assert snapshot(fedora) == before


def test_the_dry_run_shows_both_steps_and_changes_nothing(fedora: Path) -> None:
    write_config(fedora, config_text(*REGIONS, bootloader="kernel-install"))
    before = snapshot(fedora)
    done = run_pmemd("reconcile", "--root", str(fedora), "--dry-run")
    assert done.returncode == 4, done.stdout + done.stderr
    out = done.stdout
    assert "Handing over from grubby (recorded in" in out, out
    assert "pmemd's options (memmap=2G!10G memmap=4G!12G) would come off there first" in out
    assert (f"Would run: chroot {fedora} /sbin/grubby --update-kernel=ALL "
            f"--no-etc-grub-update --remove-args={M2} {M1}") in out, out
    assert out.index("Handing over") < out.index("Would write")  # then kernel-install
    document = json.loads(run_pmemd("reconcile", "--root", str(fedora), "--dry-run",
                                    "--json").stdout)
    assert document["handover"]["removed"] == [M2, M1]
    assert document["handover"]["bootloader"]["backend"] == "grubby"
    assert document["bootloader"]["backend"] == "kernel-install"
    assert snapshot(fedora) == before
    assert len(standin_calls(fedora)) == 1  # the fixture's own grubby call


def test_an_unusable_old_backend_is_an_error_and_nothing_is_written(fedora: Path) -> None:
    write_config(fedora, config_text(*REGIONS, bootloader="kernel-install"))
    (fedora / "sbin/grubby").unlink()  # grubby uninstalled behind pmemd's back
    before = snapshot(fedora)
    with pytest.raises(NoBootloader) as caught:
        reconcile(Machine(fedora), Runner())
    message = str(caught.value)
    assert f"pmemd's options ({M2} {M1}) were written through grubby" in message, message
    assert "take them off by hand and remove" in message and "state.json" in message
    assert snapshot(fedora) == before


def test_an_invalid_config_hands_nothing_over(fedora: Path) -> None:
    write_config(fedora, config_text(("data", "64G", "12G"), bootloader="kernel-install"))
    before = snapshot(fedora)
    with pytest.raises(ConfigError):
        reconcile(Machine(fedora), Runner())
    assert snapshot(fedora) == before
    assert read_state(Machine(fedora)).bootloader == "grubby"


def test_backends_sharing_the_entries_hand_over_in_turn(tree: Tree) -> None:
    """systemd-boot reading the same /boot/loader/entries grubby edits (Fedora's BLS): the
    options come off through grubby, then kernel-install puts them back once, and
    GRUB's /etc/default/grub no longer has them."""
    root = tree("fedora39", config=config_text(*REGIONS, bootloader="grubby"))
    (root / "boot/loader/loader.conf").write_text("timeout 3\n")
    (root / "etc/kernel").mkdir(exist_ok=True)
    (root / "etc/kernel/cmdline").write_text("root=UUID=1234 ro rhgb quiet\n")
    with with_standins(root, "grubby") as chroot:
        reconcile(Machine(chroot), Runner())
        write_config(chroot, config_text(*REGIONS, bootloader="kernel-install"))
        outcome = reconcile(Machine(chroot), Runner())
        assert outcome.handover is not None and outcome.handover.applied
        for line in options_lines(chroot, GRUB_ENTRIES):
            assert line.split().count(M1) == 1 and line.split().count(M2) == 1, line
        assert "memmap" not in (chroot / "etc/default/grub").read_text()
        assert (chroot / "etc/kernel/cmdline").read_text() == \
            f"root=UUID=1234 ro rhgb quiet {M2} {M1}\n"
        assert read_state(Machine(chroot)).bootloader == "kernel-install"
