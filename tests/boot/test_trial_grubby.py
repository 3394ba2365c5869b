"""Fedora/RHEL's trial boot: pmemd's own BLS entry ``pmemd-trial.conf``, a copy of the
default entry with the trial's command line, selected for one boot with ``grub2-reboot``;
committing is the usual ``grubby --update-kernel=ALL``, and either end takes the entry and
the selection away (``grub2-editenv … unset next_entry``). No trial where GRUB could not
clear the selection (an LVM-like /boot, as grub2-probe reports it) or where GRUB boots the
newest entry (no ``saved_entry``). The recording stand-ins (grubby, grub2-reboot,
grub2-editenv, grub2-probe) do to the files what the Fedora tools do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pmemd.boot.backends.grubby import TRIAL_ID, Grubby
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
    options_lines,
    standin_calls,
    with_standins,
    write_config,
)
from tests.conftest import run_pmemd

Tree = Callable[..., Path]
ENTRIES = "boot/loader/entries"
TRIAL = f"{ENTRIES}/{TRIAL_ID}.conf"
STANDINS = ("grubby", "grub2-reboot", "grub2-editenv", "grub2-probe")
A = config_text(("data", "4G", "12G"), trial="never")
B = config_text(("data", "2G", "12G"), ("cache", "2G", "10G"))
DESIRED = ("memmap=2G!10G", "memmap=2G!12G")


@pytest.fixture
def fedora(tree: Tree) -> Iterator[Path]:
    with with_standins(tree("fedora39", config=A), *STANDINS) as root:
        yield root


@pytest.fixture
def el8(tree: Tree) -> Iterator[Path]:
    with with_standins(tree("el8", config=A), *STANDINS) as root:
        yield root


def grubenv(root: Path) -> str:
    return (root / "boot/grub2/grubenv").read_text()


def armed(root: Path) -> tuple[Machine, Grubby]:
    machine, backend = arm_test_trial(root, DESIRED)
    assert isinstance(backend, Grubby)
    return machine, backend


def test_the_trial_is_a_copy_of_the_default_entry_selected_once(fedora: Path) -> None:
    assert run_pmemd("reconcile", "--root", str(fedora)).returncode == 5
    entries = {p.name: p.read_text() for p in (fedora / ENTRIES).glob("*.conf")}
    default = Machine(fedora)
    backend = detect(default).require()
    next_boot = backend.read_next_boot()
    assert next_boot.source is not None
    source = Path(next_boot.source).read_text()
    _machine, backend = armed(fedora)
    trial = (fedora / TRIAL).read_text()
    # the same kernel and initrd as the default entry, its title marked, the new options
    for line in source.splitlines():
        if line.startswith(("linux", "initrd", "version")):
            assert line in trial.splitlines(), (line, trial)
    assert "title pmemd trial boot: " in trial
    tried = backend.read_trial()
    assert tried is not None
    for arg in (*DESIRED, "pmemd.trial=feedc0de", "panic=10", "rhgb", "quiet"):
        assert carries(tried, arg), arg
    assert not carries(tried, "memmap=4G!12G")
    # every other entry as it was; GRUB's default unchanged; the selection for one boot
    assert {p.name: p.read_text() for p in (fedora / ENTRIES).glob("*.conf")
            if p.name != f"{TRIAL_ID}.conf"} == entries
    assert backend.read_next_boot() == next_boot
    assert "next_entry=pmemd-trial\n" in grubenv(fedora)
    assert ["pmemd-trial"] in standin_calls(fedora)


def test_committed_goes_to_every_entry_through_grubby_and_the_trial_goes(
        fedora: Path) -> None:
    machine, backend = armed(fedora)
    state = read_state(machine)
    committed = replace(state.trial, state=TrialState.COMMITTED, booted="boot-b")
    after = end_trial(machine, Runner(), backend, state, committed, commit=True)
    assert after.owned == DESIRED
    assert not (fedora / TRIAL).exists() and backend.read_trial() is None
    assert "next_entry" not in grubenv(fedora)
    for line in options_lines(fedora, ENTRIES):
        assert "memmap=2G!10G" in line and "memmap=2G!12G" in line, line
        assert "memmap=4G!12G" not in line and "pmemd.trial" not in line, line


@pytest.mark.parametrize("commit", [True, False], ids=["committed", "failed"])
def test_what_later_kernels_take_follows_a_trial_only_once_committed(
        fedora: Path, commit: bool) -> None:
    """/etc/kernel/cmdline (a kernel installed later) and GRUB_CMDLINE_LINUX (a later
    grub2-mkconfig --update-bls-cmdline) keep the options the default entry boots: the
    trial's from its commit on, the old ones while armed and after a failure."""
    machine, backend = armed(fedora)
    paths = [fedora / "etc/kernel/cmdline", fedora / "etc/default/grub"]
    armed_with = [p.read_bytes() for p in paths]
    assert all(b"memmap=4G!12G" in text and b"memmap=2G!10G" not in text
               for text in armed_with)  # A's, written directly before the trial
    state = read_state(machine)
    ended = replace(state.trial, state=TrialState.COMMITTED if commit else TrialState.FAILED,
                    booted="boot-b", reason="" if commit else "no")
    end_trial(machine, Runner(), backend, state, ended, commit=commit)
    for path, before in zip(paths, armed_with, strict=True):
        if not commit:
            assert path.read_bytes() == before, path
            continue
        words = path.read_text().replace('"', " ").split()
        assert all(arg in words for arg in DESIRED) and "memmap=4G!12G" not in words, path


def test_failed_leaves_every_entry_and_the_trial_goes(fedora: Path) -> None:
    machine, backend = armed(fedora)
    entries = {p.name: p.read_text() for p in (fedora / ENTRIES).glob("*.conf")
               if p.name != f"{TRIAL_ID}.conf"}
    state = read_state(machine)
    failed = replace(state.trial, state=TrialState.FAILED, booted="boot-b", reason="no")
    end_trial(machine, Runner(), backend, state, failed, commit=False)
    assert {p.name: p.read_text() for p in (fedora / ENTRIES).glob("*.conf")} == entries
    assert "next_entry" not in grubenv(fedora)


def test_el8_kernelopts_are_expanded_into_the_trial_entry(el8: Path) -> None:
    _machine, backend = armed(el8)
    trial = (el8 / TRIAL).read_text()
    assert "$kernelopts" not in trial
    tried = backend.read_trial()
    assert tried is not None
    for arg in ("root=/dev/mapper/rhel-root", "crashkernel=auto", *DESIRED, "panic=10"):
        assert carries(tried, arg), arg


@pytest.mark.parametrize(("probe", "why"), [
    ("abstraction=lvm\nfs=xfs\n", "through lvm"),
    ("abstraction=\nfs=btrfs\n", "on btrfs"),
])
def test_no_trial_where_grub_cannot_clear_the_selection(fedora: Path, probe: str,
                                                        why: str) -> None:
    assert run_pmemd("reconcile", "--root", str(fedora)).returncode == 5
    (fedora / "etc/pmemd-standin-grub2-probe").write_text(probe)
    reason = detect(Machine(fedora)).require().trial_support(Runner())
    assert reason is not None and why in reason
    write_config(fedora, B)
    done = run_pmemd("reconcile", "--root", str(fedora))
    assert done.returncode == 5, done.stdout + done.stderr
    assert why in done.stdout and not (fedora / TRIAL).exists(), done.stdout
    assert all("memmap=2G!10G" in line for line in options_lines(fedora, ENTRIES))  # direct
    assert "next_entry" not in grubenv(fedora)


def test_no_trial_where_grub_boots_the_newest_entry(fedora: Path) -> None:
    env = fedora / "boot/grub2/grubenv"
    text = env.read_text()
    saved = next(line for line in text.splitlines() if line.startswith("saved_entry="))
    env.write_text(text.replace(saved + "\n", "").ljust(1024, "#")[:1024])
    reason = detect(Machine(fedora)).require().trial_support(Runner())
    assert reason is not None and "names no saved_entry" in reason


def test_reconcile_arms_and_remove_all_takes_the_trial_away(fedora: Path) -> None:
    assert run_pmemd("reconcile", "--root", str(fedora)).returncode == 5
    write_config(fedora, B)
    done = run_pmemd("reconcile", "--root", str(fedora))
    assert done.returncode == 5, done.stdout + done.stderr
    assert "Trial boot: the next boot tries the new options once" in done.stdout
    assert (fedora / TRIAL).exists() and "next_entry=pmemd-trial" in grubenv(fedora)
    removed = run_pmemd("reconcile", "--root", str(fedora), "--remove-all")
    assert removed.returncode == 5, removed.stdout + removed.stderr
    assert not (fedora / TRIAL).exists() and "next_entry" not in grubenv(fedora)
    assert all("memmap=" not in line for line in options_lines(fedora, ENTRIES))
