"""One reading of the machine, as the service shows it: the config (valid or not), the
facts, the plan against the bootloader's next boot, and the reboot guard's verdict — read
by the same functions ``pmemd plan`` calls, and whatever is wrong kept as data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pmemd.boot.view import BootView, plan_next_boot, read_boot_view
from pmemd.core.facts import MachineFacts
from pmemd.core.model import Config
from pmemd.core.plan import Plan, PlanState
from pmemd.core.trial import Trial
from pmemd.errors import MachineError, Problem
from pmemd.machine.facts import read_config, read_facts
from pmemd.machine.root import Machine
from pmemd.machine.state import read_state


@dataclass(frozen=True)
class Status:
    """One reading of the machine, by the functions ``pmemd plan`` calls."""

    config_path: str
    config: Config | None
    problems: tuple[Problem, ...]  # why the config is invalid (parse or plan problems)
    facts: MachineFacts | None
    machine_error: str | None  # why the machine could not be read
    plan: Plan | None = None
    boot: BootView | None = None
    guard: str | None = None  # reconcile's degraded marker: the reboot guard stopped
    trial: Trial = field(default_factory=Trial)  # the last trial boot (state.json)


def read_status(machine: Machine, config_path: Path | None,
                last: Status | None = None) -> Status:
    """A new reading. What cannot be read is kept as data: a :class:`MachineError`, or an
    ``OSError`` that escaped the readers (sysfs refusing a sandboxed service, a device gone
    in the middle of a reading) makes a status that says why, with ``last``'s config."""
    try:
        return _read_status(machine, config_path)
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        return unreadable_status(f"{where}{err.strerror or err}", last,
                                 config_path or machine.config)


def unreadable_status(why: str, last: Status | None, config_path: Path) -> Status:
    """The machine could not be read (``why``): the config of the last reading, no facts."""
    if last is None:
        return Status(str(config_path), None, (), None, why)
    return Status(last.config_path, last.config, last.problems, None, why)


def _read_status(machine: Machine, config_path: Path | None) -> Status:
    parsed = read_config(machine, config_path)
    shown, config = parsed.path, parsed.config
    try:
        facts = read_facts(machine, devices=True)
        if config is None:
            # What needs no valid config is still shown: the running command line (facts)
            # and the bootloader (the one the usable part of the config names, else auto).
            try:
                seen: BootView | None = read_boot_view(machine, parsed.usable)
            except MachineError:
                seen = None
            return Status(shown, None, parsed.problems, facts, None, boot=seen)
        boot = read_boot_view(machine, config)  # judged against the bootloader's next boot
        result = plan_next_boot(config, facts, boot)
        guard = machine.read_text(machine.runtime_degraded)
        trial = read_state(machine).trial
    except MachineError as err:
        return Status(shown, config, parsed.problems, None, str(err))
    return Status(shown, config, result.problems, facts, None, result, boot,
                  guard.strip() if guard else None, trial)


def overall_state(status: Status) -> PlanState:
    if status.config is None or status.problems:
        return PlanState.INVALID_CONFIG
    if status.plan is None or status.machine_error is not None or status.guard:
        return PlanState.DEGRADED
    return status.plan.state
