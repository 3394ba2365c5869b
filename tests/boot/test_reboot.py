"""Reboot handling: the markers admins and tools look at, one guarded reboot per desired
state through systemd's D-Bus API (pystemd, on a private bus under systemd's real bus
policy, with a recording stand-in for PID 1), and "degraded" instead of a boot loop."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pmemd.boot.backends.base import NextBoot
from pmemd.boot.reboot import (
    REBOOT_REQUIRED_TEXT,
    clear_reboot_required,
    explain_missing_options,
    mark_reboot_required,
    request_reboot,
)
from pmemd.boot.reconcile import Outcome, reconcile
from pmemd.core.cmdline import parse_cmdline
from pmemd.core.model import RebootPolicy
from pmemd.core.plan import PlanState
from pmemd.core.reboot import Pending, RebootAction, decide_reboot
from pmemd.errors import RebootError
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.machine.state import read_state
from tests.boot.conftest import STANDINS, config_text, write_config
from tests.conftest import REPO, run_pmemd
from tests.service.harness import PrivateBus

Tree = Callable[..., Path]
M1, M2 = "memmap=4G!12G", "memmap=2G!10G"
SYSTEMD_POLICY = Path("/usr/share/dbus-1/system.d/org.freedesktop.systemd1.conf")


# --- the decision (pure) -----------------------------------------------------------------------


def decide(needed: bool = True, pending: Pending | None = None, boot: str | None = "A",
           policy: RebootPolicy = RebootPolicy.AUTO, allowed: bool = True,
           digest: str = "d1") -> tuple[RebootAction, Pending | None]:
    decision = decide_reboot(needed=needed, digest=digest, boot_id=boot, pending=pending,
                             policy=policy, allowed=allowed, cause=lambda: "the cause")
    return decision.action, decision.pending


@pytest.mark.parametrize(("kwargs", "action", "pending"), [
    ({"needed": False, "pending": Pending("d1", "A", True)}, RebootAction.NONE, None),
    ({}, RebootAction.REBOOT, Pending("d1", "A", True)),  # first time: once
    ({"pending": Pending("d1", "A", True)}, RebootAction.MARK, Pending("d1", "A", True)),
    ({"pending": Pending("d1", "A", True), "boot": "B"}, RebootAction.DEGRADED,
     Pending("d1", "A", True)),  # booted since, options still missing: stop
    ({"pending": Pending("d1", "A", False), "boot": "B", "policy": RebootPolicy.NEVER},
     RebootAction.DEGRADED, Pending("d1", "A", False)),  # someone rebooted: same verdict
    ({"pending": Pending("d0", "A", True), "boot": "B"}, RebootAction.REBOOT,
     Pending("d1", "B", True)),  # a new desired state: one more reboot
    ({"policy": RebootPolicy.NEVER}, RebootAction.MARK, Pending("d1", "A", False)),
    ({"allowed": False}, RebootAction.MARK, Pending("d1", "A", False)),  # --root, dry run
    ({"pending": Pending("d1", None, True), "boot": None}, RebootAction.MARK,
     Pending("d1", None, True)),  # boots unknown: never a second reboot
])
def test_decide_reboot(kwargs: dict[str, object], action: RebootAction,
                       pending: Pending | None) -> None:
    assert decide(**kwargs) == (action, pending)  # type: ignore[arg-type]


def test_degraded_message_names_the_cause() -> None:
    decision = decide_reboot(needed=True, digest="d", boot_id="B", pending=Pending("d", "A"),
                             policy=RebootPolicy.AUTO, allowed=True, cause=lambda: "X happened")
    assert "X happened" in decision.message and "will not reboot again" in decision.message


@pytest.mark.parametrize(("running", "kernel", "expected"), [
    ("BOOT_IMAGE=/boot/vmlinuz-6.1.0-26-amd64 ro", "/boot/vmlinuz-6.1.0-27-amd64",
     "it booted /boot/vmlinuz-6.1.0-26-amd64, not the default entry's kernel"),
    ("BOOT_IMAGE=(hd0,msdos1)/boot/vmlinuz-6.1.0-27-amd64 ro", "/boot/vmlinuz-6.1.0-27-amd64",
     "or the firmware starts a bootloader or config that pmemd did not write"),
    ("ro", "/4c3f/6.1.0-27-amd64/linux",
     "or the firmware starts a bootloader or config that pmemd did not write"),
])
def test_explain_missing_options(running: str, kernel: str, expected: str) -> None:
    next_boot = NextBoot(parse_cmdline(f"ro {M1}"), "/boot/grub/grub.cfg", "Debian", kernel)
    text = explain_missing_options(parse_cmdline(running), next_boot, (M1,), "update-grub: x")
    assert expected in text


# --- markers -------------------------------------------------------------------------------------


def test_markers_are_shared_with_other_packages(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run/reboot-required.pkgs").write_text("linux-image-6.1.0-28-amd64\n")
    (tmp_path / "run/reboot-required").write_text(REBOOT_REQUIRED_TEXT)
    mark_reboot_required(machine, "why\n")
    mark_reboot_required(machine, "why\n")
    assert (tmp_path / "run/reboot-required.pkgs").read_text() == \
        "linux-image-6.1.0-28-amd64\npmemd\n"
    assert (tmp_path / "run/pmemd/reboot-required").read_text() == "why\n"
    clear_reboot_required(machine)
    assert (tmp_path / "run/reboot-required.pkgs").read_text() == "linux-image-6.1.0-28-amd64\n"
    assert (tmp_path / "run/reboot-required").exists()  # the kernel update still asks
    assert not (tmp_path / "run/pmemd/reboot-required").exists()


def test_markers_alone_are_taken_back_entirely(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    mark_reboot_required(machine, "why\n")
    assert (tmp_path / "run/reboot-required").read_text() == REBOOT_REQUIRED_TEXT
    clear_reboot_required(machine)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["pmemd"]


# --- the guard, end to end ---------------------------------------------------------------------


@dataclass
class Pid1:
    """A private system bus with a recording stand-in for systemd's Manager on it."""

    address: str
    log: Path

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line)["args"] for line in self.log.read_text().splitlines()]


def _start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)


@pytest.fixture
def bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A system-bus-like private bus with systemd's own bus policy for org.freedesktop.systemd1."""
    private = PrivateBus(tmp_path, policy=f"  <include>{SYSTEMD_POLICY}</include>\n").start()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", private.address)
    yield private.address, tmp_path
    private.stop()


@pytest.fixture
def pid1(bus: tuple[str, Path]) -> Iterator[Pid1]:
    address, directory = bus
    log = directory / "systemd1-calls"
    manager = _start(["/usr/bin/python3", str(STANDINS / "systemd1-manager"), address, str(log)])
    assert manager.stdout is not None
    assert manager.stdout.readline().strip() == "ready", manager.communicate(timeout=10)[1]
    yield Pid1(address, log)
    manager.terminate()
    manager.communicate(timeout=10)


def test_request_reboot_asks_pid1_like_systemctl_reboot(pid1: Pid1) -> None:
    request_reboot()
    assert pid1.calls() == [["reboot.target", "replace-irreversibly"]]


def test_request_reboot_without_pid1_is_a_clear_error(bus: tuple[str, Path]) -> None:
    with pytest.raises(RebootError, match=r"systemd did not start reboot\.target"):
        request_reboot()


class Machine16G:
    """The systemd-boot tree as a running machine: its boot id and /proc/cmdline change
    with each 'boot'."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def boot(self, boot_id: str, *options: str, image: str = "6.1.0-27-amd64") -> None:
        path = self.root / "proc/sys/kernel/random/boot_id"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(boot_id + "\n")
        (self.root / "proc/cmdline").write_text(
            " ".join([f"BOOT_IMAGE=/boot/vmlinuz-{image}",
                      "root=UUID=5b2f0d4e-8f0c-4f0e-9c55-3f1d2b7a9e11", "ro", "quiet",
                      *options]) + "\n")

    def reconcile(self) -> Outcome:
        return reconcile(Machine(self.root), Runner(), live=True)


@pytest.fixture
def machine(tree: Tree) -> Machine16G:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G"),
                                                            reboot="auto"))
    running = Machine16G(root)
    running.boot("boot-a")
    return running


def test_one_reboot_per_desired_state_then_degraded_never_a_loop(machine: Machine16G,
                                                                 pid1: Pid1) -> None:
    first = machine.reconcile()
    assert first.reboot.action is RebootAction.REBOOT
    assert pid1.calls() == [["reboot.target", "replace-irreversibly"]]
    assert (machine.root / "run/pmemd/reboot-required").exists()
    state = read_state(Machine(machine.root))
    assert state.pending is not None and state.pending.rebooted
    # pmemd runs again before the reboot happened: it does not ask twice
    assert machine.reconcile().reboot.action is RebootAction.MARK
    assert len(pid1.calls()) == 1
    # the machine rebooted, but into the older kernel: the options are still missing
    machine.boot("boot-b", image="6.1.0-26-amd64")
    done = run_pmemd("reconcile", "--root", str(machine.root))
    assert done.returncode == 6, done.stdout + done.stderr
    assert "State: degraded: the machine has booted since pmemd configured" in done.stdout
    assert "it booted /boot/vmlinuz-6.1.0-26-amd64, not the default entry's kernel" in \
        done.stdout
    degraded = (machine.root / "run/pmemd/degraded").read_text()
    assert "will not reboot again" in degraded
    for boot in ("boot-c", "boot-d"):
        machine.boot(boot)
        outcome = machine.reconcile()
        assert outcome.state is PlanState.DEGRADED and outcome.reboot.action is \
            RebootAction.DEGRADED
    assert len(pid1.calls()) == 1  # never a second reboot for this configuration
    # a new desired state may reboot once more
    write_config(machine.root, config_text(("data", "4G", "12G"), ("cache", "2G", "10G"),
                                           reboot="auto"))
    assert machine.reconcile().reboot.action is RebootAction.REBOOT
    assert len(pid1.calls()) == 2
    # and once it boots with the options, all is well again
    machine.boot("boot-e", M2, M1)
    outcome = machine.reconcile()
    assert outcome.state is PlanState.CONVERGED
    assert read_state(Machine(machine.root)).pending is None
    assert not (machine.root / "run/pmemd/degraded").exists()
    assert not (machine.root / "run/pmemd/reboot-required").exists()
    assert not (machine.root / "run/reboot-required").exists()


def test_policy_never_marks_and_still_notices_a_boot_without_the_options(
        machine: Machine16G, pid1: Pid1) -> None:
    write_config(machine.root, config_text(("data", "4G", "12G")))
    outcome = machine.reconcile()
    assert outcome.reboot.action is RebootAction.MARK and pid1.calls() == []
    assert (machine.root / "run/reboot-required.pkgs").read_text() == "pmemd\n"
    machine.boot("boot-b")
    outcome = machine.reconcile()
    assert outcome.state is PlanState.DEGRADED
    assert "or the firmware starts a bootloader or config that pmemd did not write" in \
        outcome.reboot.message
    assert pid1.calls() == []


def test_failed_reboot_request_lets_the_next_run_try_again(machine: Machine16G,
                                                           bus: tuple[str, Path]) -> None:
    with pytest.raises(RebootError):
        machine.reconcile()
    state = read_state(Machine(machine.root))
    assert state.pending is not None and not state.pending.rebooted


def test_dry_run_and_other_roots_never_reboot(machine: Machine16G, pid1: Pid1) -> None:
    done = run_pmemd("reconcile", "--dry-run", "--root", str(machine.root))
    assert done.returncode == 4
    done = run_pmemd("reconcile", "--root", str(machine.root))  # not the running system
    assert done.returncode == 5
    assert "boot.reboot: auto reboots only the running system" in done.stdout
    assert pid1.calls() == []
