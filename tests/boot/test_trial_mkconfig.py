"""The grub-mkconfig backend and its trial boot with the real GRUB tools in a Debian 12 root
whose update-grub wrapper is gone (as on Arch and Gentoo, which run GRUB's own
grub-mkconfig; Fedora and SUSE name the same program grub2-mkconfig): pmemd edits
GRUB_CMDLINE_LINUX in /etc/default/grub (every other byte kept) and runs
``grub-mkconfig -o /boot/grub/grub.cfg``; a trial is pmemd's
/etc/default/grub.d/pmemd-trial.cfg, read only by /etc/grub.d/42_pmemd_trial, which writes
one entry with the trial's command line, and ``grub-reboot pmemd-trial``; committing writes
/etc/default/grub, failing leaves it, and both take the entry and the selection away."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pmemd.boot.backends.mkconfig import Grub2Mkconfig
from pmemd.boot.backends.update_grub import TRIAL_ID
from pmemd.boot.detect import detect
from pmemd.boot.trial import end_trial
from pmemd.core.cmdline import carries
from pmemd.core.model import BootloaderChoice
from pmemd.core.trial import TrialState
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.machine.state import read_state
from tests.boot.conftest import arm_test_trial, config_text, write_config
from tests.boot.debianroot import DebianRoot
from tests.conftest import REPO, run_pmemd

SCRIPT = REPO / "etc/grub.d/42_pmemd_trial"
TARGET = "/etc/grub.d/42_pmemd_trial"
TRIAL_DROPIN = "/etc/default/grub.d/pmemd-trial.cfg"
ADMIN = "console=ttyS0 'quoted=a b'"
DESIRED = ("memmap=2G!10G", "memmap=2G!12G")
A = config_text(("data", "4G", "12G"), trial="never")
B = config_text(("data", "2G", "12G"), ("cache", "2G", "10G"))


@pytest.fixture
def root(debian: tuple[DebianRoot, Path]) -> Iterator[DebianRoot]:
    """The Debian root without update-grub (not executable), the trial script installed,
    the admin's own GRUB_CMDLINE_LINUX."""
    found, _ = debian
    found.remember(TARGET, TRIAL_DROPIN, "/etc/default/grub", "/boot/grub/grubenv",
                   "/boot/grub/grub.cfg")
    shutil.copy(SCRIPT, found.file(TARGET))
    found.file(TARGET).chmod(0o755)
    default = found.file("/etc/default/grub")
    default.write_text(default.read_text().replace('GRUB_CMDLINE_LINUX=""',
                                                   f'GRUB_CMDLINE_LINUX="{ADMIN}"'))
    wrapper = found.file("/usr/sbin/update-grub")
    wrapper.chmod(0o644)
    try:
        found.chroot("grub-mkconfig", "-o", "/boot/grub/grub.cfg")
        yield found
    finally:
        wrapper.chmod(0o755)


def linux_lines(root: DebianRoot) -> list[str]:
    return [line.strip() for line in root.file("/boot/grub/grub.cfg").read_text().splitlines()
            if line.strip().startswith("linux\t")]


def test_detected_by_grub_mkconfig_and_written_in_place(root: DebianRoot) -> None:
    machine = Machine(root.root)
    detection = detect(machine)
    backend = detection.require()
    assert isinstance(backend, Grub2Mkconfig) and backend.kind is BootloaderChoice.GRUB2_MKCONFIG
    assert backend.tool == "/usr/sbin/grub-mkconfig" and "/boot/grub" in detection.reason
    before = root.file("/etc/default/grub").read_text()
    write_config(root.root, A)
    done = run_pmemd("reconcile", "--root", str(root.root))
    assert done.returncode == 5, done.stdout + done.stderr
    assert "/usr/sbin/grub-mkconfig -o /boot/grub/grub.cfg\n" in done.stdout, done.stdout
    after = root.file("/etc/default/grub").read_text()
    assert after == before.replace(f'GRUB_CMDLINE_LINUX="{ADMIN}"',
                                   f'GRUB_CMDLINE_LINUX="{ADMIN} memmap=4G!12G"')
    assert all("memmap=4G!12G" in line and "'quoted=a b'" in line for line in linux_lines(root))


def armed(root: DebianRoot) -> tuple[Machine, Grub2Mkconfig]:
    write_config(root.root, A)
    machine, backend = arm_test_trial(root.root, DESIRED)
    assert isinstance(backend, Grub2Mkconfig)
    return machine, backend


def test_a_trial_is_one_entry_selected_once_and_the_default_stays(root: DebianRoot) -> None:
    default_grub = None
    write_config(root.root, A)
    assert run_pmemd("reconcile", "--root", str(root.root)).returncode == 5
    default_grub = root.file("/etc/default/grub").read_text()
    lines = linux_lines(root)
    machine, backend = armed(root)
    assert root.file("/etc/default/grub").read_text() == default_grub  # the admin's file
    trial = backend.read_trial()
    assert trial is not None
    for arg in (*DESIRED, "pmemd.trial=feedc0de", "panic=10", "console=ttyS0"):
        assert carries(trial, arg), arg
    assert not carries(trial, "memmap=4G!12G")
    cfg = root.file("/boot/grub/grub.cfg").read_text()
    assert cfg.count(f"$menuentry_id_option '{TRIAL_ID}'") == 1
    assert [line for line in linux_lines(root) if "pmemd.trial=" not in line] == lines
    assert "next_entry=pmemd-trial\n" in root.file("/boot/grub/grubenv").read_text()
    assert read_state(machine).trial.state is TrialState.ARMED


def test_committed_goes_into_etc_default_grub_and_the_trial_goes(root: DebianRoot) -> None:
    machine, backend = armed(root)
    state = read_state(machine)
    committed = replace(state.trial, state=TrialState.COMMITTED, booted="boot-b")
    after = end_trial(machine, Runner(), backend, state, committed, commit=True)
    assert after.owned == DESIRED
    text = root.file("/etc/default/grub").read_text()
    assert f'GRUB_CMDLINE_LINUX="{ADMIN} memmap=2G!10G memmap=2G!12G"' in text, text
    assert not root.file(TRIAL_DROPIN).exists() and backend.read_trial() is None
    assert "next_entry" not in root.file("/boot/grub/grubenv").read_text()
    default = backend.read_next_boot().cmdline
    assert default is not None and all(carries(default, a) for a in DESIRED)
    assert not carries(default, "pmemd.trial=feedc0de")


def test_failed_leaves_etc_default_grub_and_the_trial_goes(root: DebianRoot) -> None:
    machine, backend = armed(root)
    text = root.file("/etc/default/grub").read_text()
    before = backend.read_next_boot().cmdline
    state = read_state(machine)
    failed = replace(state.trial, state=TrialState.FAILED, booted="boot-b", reason="no")
    end_trial(machine, Runner(), backend, state, failed, commit=False)
    assert root.file("/etc/default/grub").read_text() == text
    assert backend.read_next_boot().cmdline == before
    assert not root.file(TRIAL_DROPIN).exists() and backend.read_trial() is None
    assert "next_entry" not in root.file("/boot/grub/grubenv").read_text()


def test_reconcile_arms_and_remove_all_takes_everything_back(root: DebianRoot) -> None:
    original = root.file("/etc/default/grub").read_text()
    write_config(root.root, A)
    assert run_pmemd("reconcile", "--root", str(root.root)).returncode == 5
    write_config(root.root, B)
    done = run_pmemd("reconcile", "--root", str(root.root))
    assert done.returncode == 5, done.stdout + done.stderr
    assert "Trial boot: the next boot tries the new options once" in done.stdout, done.stdout
    state = json.loads(root.file("/var/lib/pmemd/state.json").read_text())
    assert state["trial"]["state"] == "armed" and state["owned"] == ["memmap=4G!12G"]
    removed = run_pmemd("reconcile", "--root", str(root.root), "--remove-all")
    assert removed.returncode == 5, removed.stdout + removed.stderr
    assert "Trial boot (armed" in removed.stdout and "taken away" in removed.stdout
    assert root.file("/etc/default/grub").read_text() == original
    assert not root.file(TRIAL_DROPIN).exists()
    assert "next_entry" not in root.file("/boot/grub/grubenv").read_text()
    assert all("memmap=" not in line and "pmemd.trial" not in line
               for line in linux_lines(root))


def test_grub2_names_its_siblings_grub2(root: DebianRoot) -> None:
    backend = Grub2Mkconfig(Machine(root.root), "/usr/sbin/grub2-mkconfig")
    why = backend.trial_support(Runner())
    assert why == "no grub2-reboot program beside /usr/sbin/grub2-mkconfig"
