"""systemd-boot's trial boot on the entries the real kernel-install wrote
(tests/fixtures/bootloader/debian12-systemd-boot): pmemd's own entry ``pmemd-trial.conf``,
a copy of the default one whose ``sort-key`` sorts after it, and ``bootctl set-oneshot``
(a recording stand-in writes the EFI variable into the tree's efivarfs; the UEFI guest in
tests/vm/test_uefi.py runs the real one through real reboots). No trial where the trial
entry could become the default, or without EFI variables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pmemd.boot.backends.kernel_install import ONE_SHOT_VARIABLE, TRIAL_ID, KernelInstall
from pmemd.boot.detect import detect
from pmemd.boot.trial import end_trial
from pmemd.core.cmdline import carries
from pmemd.core.trial import TrialState
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.machine.state import read_state
from tests.boot.conftest import (
    arm_test_trial,
    config_text,
    entry_options,
    standin_calls,
    with_standins,
)

Tree = Callable[..., Path]
ENTRIES = "boot/efi/loader/entries"
TRIAL = f"{ENTRIES}/{TRIAL_ID}.conf"
EFIVAR = f"sys/firmware/efi/efivars/{ONE_SHOT_VARIABLE}"
DESIRED = ("memmap=2G!10G", "memmap=2G!12G")
A = config_text(("data", "4G", "12G"), trial="never")


@pytest.fixture
def uefi(tree: Tree) -> Iterator[Path]:
    root = tree("debian12-systemd-boot", config=A)
    (root / "sys/firmware/efi/efivars").mkdir(parents=True, exist_ok=True)
    with with_standins(root, "bootctl") as ready:
        yield ready


def one_shot(root: Path) -> str | None:
    path = root / EFIVAR
    return path.read_bytes()[4:].decode("utf-16-le").rstrip("\0") if path.exists() else None


def armed(root: Path) -> tuple[Machine, KernelInstall]:
    machine, backend = arm_test_trial(root, DESIRED)
    assert isinstance(backend, KernelInstall)
    return machine, backend


def test_the_trial_is_a_copy_sorting_after_the_default_selected_once(uefi: Path) -> None:
    _machine, backend = armed(uefi)
    # every entry of the kernels, and the template for new ones, keep pmemd's old options
    ordinary = {k: v for k, v in entry_options(uefi, ENTRIES).items()
                if k != f"{TRIAL_ID}.conf"}
    assert len(ordinary) == 2 and all(line.endswith(" memmap=4G!12G")
                                      for line in ordinary.values()), ordinary
    assert (uefi / "etc/kernel/cmdline").read_text().split()[-1] == "memmap=4G!12G"
    trial = (uefi / TRIAL).read_text()
    assert "sort-key debian-pmemd-trial" in trial and "title pmemd trial boot: " in trial
    tried = backend.read_trial()
    assert tried is not None
    for arg in (*DESIRED, "pmemd.trial=feedc0de", "panic=10", "quiet"):
        assert carries(tried, arg), arg
    assert not carries(tried, "memmap=4G!12G")
    assert one_shot(uefi) == f"{TRIAL_ID}.conf"
    assert ["set-oneshot", f"{TRIAL_ID}.conf"] in standin_calls(uefi)
    default = backend.read_next_boot()  # never the trial entry
    assert default.source.endswith("6.1.0-27-amd64.conf")


def test_committed_goes_into_the_cmdline_and_every_entry_and_the_trial_goes(
        uefi: Path) -> None:
    machine, backend = armed(uefi)
    (uefi / EFIVAR).unlink()  # systemd-boot removed it as it booted the trial
    state = read_state(machine)
    committed = replace(state.trial, state=TrialState.COMMITTED, booted="boot-b")
    end_trial(machine, Runner(), backend, state, committed, commit=True)
    assert not (uefi / TRIAL).exists()
    for line in entry_options(uefi, ENTRIES).values():
        assert line.endswith(" ".join(DESIRED)) and "memmap=4G!12G" not in line, line
    text = (uefi / "etc/kernel/cmdline").read_text()
    assert all(a in text.split() for a in DESIRED) and "pmemd.trial" not in text
    assert standin_calls(uefi)[-1] == ["set-oneshot", f"{TRIAL_ID}.conf"]  # nothing to clear


def test_a_trial_that_never_booted_takes_its_selection_away(uefi: Path) -> None:
    machine, backend = armed(uefi)
    before = entry_options(uefi, ENTRIES)
    state = read_state(machine)
    failed = replace(state.trial, state=TrialState.FAILED, booted="boot-b", reason="no")
    end_trial(machine, Runner(), backend, state, failed, commit=False)
    assert not (uefi / TRIAL).exists() and one_shot(uefi) is None
    assert {k: v for k, v in before.items() if k != f"{TRIAL_ID}.conf"} == \
        entry_options(uefi, ENTRIES)
    assert standin_calls(uefi)[-1] == ["set-oneshot", ""]


@pytest.mark.parametrize(("change", "why"), [
    ("no-efivars", "no EFI variables"),
    ("no-sort-key", "has no sort-key"),
    ("default-glob", "would also match a trial entry"),
])
def test_no_trial_where_it_could_become_the_default_or_not_be_selected(
        uefi: Path, change: str, why: str) -> None:
    if change == "no-efivars":
        (uefi / "sys/firmware/efi/efivars").rmdir()
    elif change == "no-sort-key":
        for entry in (uefi / ENTRIES).glob("*.conf"):
            entry.write_text("".join(line for line in entry.read_text().splitlines(True)
                                     if not line.startswith("sort-key")))
    else:
        (uefi / "boot/efi/loader/loader.conf").write_text("default *\n")
    reason = detect(Machine(uefi)).require().trial_support(Runner())
    assert reason is not None and why in reason
