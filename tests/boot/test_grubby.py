"""Fedora/RHEL: one `grubby --update-kernel=ALL` call with all regions, checked by reading
the BLS entries back; the recording stand-in does to the files what grubby does."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pmemd.boot.reconcile import Outcome, reconcile
from pmemd.core.plan import PlanState
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from tests.boot.conftest import (
    BACKUPS,
    config_text,
    options_lines,
    snapshot,
    standin_calls,
    with_standins,
    write_config,
)
from tests.conftest import REPO, run_pmemd, sigint_as_at_a_terminal

Tree = Callable[..., Path]
M1, M2 = "memmap=4G!12G", "memmap=2G!10G"
ENTRIES = "boot/loader/entries"
FOREIGN = "memmap=64M!0x7c000000"  # a pmem range the admin set up by hand


@pytest.fixture
def fedora(tree: Tree) -> Iterator[Path]:
    with with_standins(tree("fedora39", config=config_text(("data", "4G", "12G"),
                                                           ("cache", "2G", "10G"))),
                       "grubby") as root:
        yield root


def run(root: Path, runner: Runner | None = None) -> Outcome:
    return reconcile(Machine(root), runner or Runner())


def options(root: Path) -> list[str]:
    return options_lines(root, ENTRIES)


def bootloader_files(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in snapshot(root).items()
            if k.startswith((ENTRIES, "boot/grub2", "etc/default")) and not k.endswith(BACKUPS)}


def test_all_regions_in_one_grubby_call_and_every_entry_carries_them(fedora: Path) -> None:
    runner = Runner()
    outcome = run(fedora, runner)
    assert runner.recorded == [("chroot", str(fedora), "/sbin/grubby", "--update-kernel=ALL",
                                f"--args={M2} {M1}")]
    assert standin_calls(fedora) == [["--update-kernel=ALL", f"--args={M2} {M1}"]]
    assert outcome.state is PlanState.REBOOT_REQUIRED
    assert all(line.endswith(f"rhgb quiet {M2} {M1}") for line in options(fedora))
    assert f'GRUB_CMDLINE_LINUX="rhgb quiet {M2} {M1}"' in \
        (fedora / "etc/default/grub").read_text()  # grubby keeps it for grub2-mkconfig


def test_second_run_runs_no_tool_and_changes_nothing(fedora: Path) -> None:
    run(fedora)
    before = snapshot(fedora)
    runner = Runner()
    outcome = run(fedora, runner)
    assert runner.recorded == [] and len(standin_calls(fedora)) == 1
    assert not outcome.applied and snapshot(fedora) == before


def test_foreign_memmap_survives_grubby_dropping_every_memmap(fedora: Path) -> None:
    for entry in (fedora / ENTRIES).glob("*.conf"):
        entry.write_text(entry.read_text().replace("rhgb quiet", f"rhgb quiet {FOREIGN}"))
    outcome = run(fedora)
    assert standin_calls(fedora)[-1] == ["--update-kernel=ALL", f"--args={FOREIGN} {M2} {M1}"]
    assert outcome.write.keep == (FOREIGN,)
    assert all(FOREIGN in line and M1 in line for line in options(fedora))


def test_resize_and_remove_touch_only_pmemds_options(fedora: Path) -> None:
    original = bootloader_files(fedora)
    run(fedora)
    write_config(fedora, config_text(("data", "2G", "12G"), ("cache", "2G", "10G")))
    run(fedora)
    assert standin_calls(fedora)[-1] == ["--update-kernel=ALL", f"--args={M2} memmap=2G!12G",
                                         f"--remove-args={M1}"]
    assert all(line.endswith(f"{M2} memmap=2G!12G") for line in options(fedora))
    write_config(fedora, config_text())
    run(fedora)
    assert standin_calls(fedora)[-1] == ["--update-kernel=ALL",
                                         f"--remove-args={M2} memmap=2G!12G"]
    assert bootloader_files(fedora) == original


def test_grubby_failure_restores_every_file_and_reports_its_output(fedora: Path) -> None:
    before = bootloader_files(fedora)
    rescue = next((fedora / ENTRIES).glob("*rescue.conf"))
    subprocess.run(["chattr", "+i", str(rescue)], check=True)
    try:
        done = run_pmemd("reconcile", "--root", str(fedora))
    finally:
        subprocess.run(["chattr", "-i", str(rescue)], check=True)
    assert done.returncode == 1
    assert "/sbin/grubby --update-kernel=ALL" in done.stderr
    assert "failed with exit status 1" in done.stderr
    assert "Operation not permitted" in done.stderr  # grubby's own words
    assert "pmemd put the previous bootloader files back" in done.stderr
    assert len(standin_calls(fedora)) == 1  # it ran, and changed the newer entries first
    assert bootloader_files(fedora) == before
    assert not (fedora / "var/lib/pmemd/state.json").exists()


# --- EL8: options $kernelopts ---------------------------------------------------------------------


@pytest.fixture
def el8(tree: Tree) -> Iterator[Path]:
    with with_standins(tree("el8", config=config_text(("data", "4G", "12G"))), "grubby") as root:
        yield root


def test_el8_kernelopts_in_grubenv_carry_the_options(el8: Path) -> None:
    entries = {p.name: p.read_bytes() for p in (el8 / ENTRIES).glob("*.conf")}
    outcome = run(el8)
    assert outcome.state is PlanState.REBOOT_REQUIRED
    env = (el8 / "boot/grub2/grubenv").read_text()
    assert len(env) == 1024
    assert "kernelopts=root=/dev/mapper/rhel-root ro crashkernel=auto " in env
    assert f"rhgb quiet {M1}\n" in env
    assert {p.name: p.read_bytes() for p in (el8 / ENTRIES).glob("*.conf")} == entries
    assert outcome.plan.changes[0].argument == M1


def test_el8_broken_grubenv_fails_and_restores_etc_default_grub(el8: Path) -> None:
    env = el8 / "boot/grub2/grubenv"
    env.write_text(env.read_text()[:1000])  # a truncated environment block
    before = bootloader_files(el8)
    done = run_pmemd("reconcile", "--root", str(el8))
    assert done.returncode == 1
    assert "invalid environment block" in done.stderr
    assert bootloader_files(el8) == before


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_reconcile_puts_every_file_back(fedora: Path, signum: int) -> None:
    """``systemctl stop`` (SIGTERM) or Ctrl-C while grubby runs: grubby has already
    rewritten every entry when the signal comes; pmemd kills it, puts the entries, grubenv,
    /etc/default/grub and its own state back as they were, and exits 143 (130)."""
    grubby = fedora / "sbin" / "grubby"
    slow = fedora / "sbin" / "grubby.real"
    grubby.rename(slow)
    grubby.write_text("#!/bin/sh\n/sbin/grubby.real \"$@\" && exec sleep 3017\n")
    grubby.chmod(0o755)
    before = bootloader_files(fedora)
    with sigint_as_at_a_terminal():
        process = subprocess.Popen([sys.executable, "-m", "pmemd", "reconcile", "--root",
                                    str(fedora)], cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and subprocess.run(
            ["pgrep", "-f", "sleep 3017"], capture_output=True, check=False).returncode:
        time.sleep(0.1)  # until grubby has done its work (the wrapper then sleeps)
    assert bootloader_files(fedora) != before  # the tool's changes are on disk now
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    expected = 143 if signum == signal.SIGTERM else 130
    assert process.returncode == expected, err
    assert bootloader_files(fedora) == before
    assert not Machine(fedora).state_file.exists()  # the claim went back too
    left = subprocess.run(["pgrep", "-f", "sleep 3017"], capture_output=True, check=False)
    assert left.returncode == 1  # grubby's whole process group is gone
