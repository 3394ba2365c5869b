"""Taking pmemd's options back off the boot configuration: everything at package removal
(``pmemd reconcile --remove-all``), or what one backend wrote before another takes over
(a handover, when ``boot.bootloader`` changes or detection finds another bootloader).

Only what pmemd's state records as its own comes off, through the backend recorded as its
writer; the record goes only once the bootloader no longer carries the options."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pmemd.boot.apply import apply_boot_write, sweep_leftovers
from pmemd.boot.backends.base import Backend, BootWrite, NextBoot
from pmemd.boot.detect import Detection, detect
from pmemd.boot.reboot import (
    clear_reboot_required,
    mark_degraded,
    mark_reboot_required,
)
from pmemd.boot.trial import end_trial
from pmemd.core.cmdline import Cmdline, CmdlineEdit, carries, merge_args
from pmemd.core.model import BootloaderChoice
from pmemd.core.trial import Trial, TrialState
from pmemd.errors import BootConfigError, MachineError, NoBootloader
from pmemd.machine.facts import read_cmdline, read_config
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.machine.state import State, read_state, write_state


@dataclass(frozen=True)
class Removal:
    """What ``pmemd reconcile --remove-all`` found and did (or, in a dry run, would do)."""

    removed: tuple[str, ...]  # pmemd's options taken off (or to take off) the next boot
    detection: Detection | None  # None: nothing was recorded, no bootloader looked at
    next_boot: NextBoot | None  # the default entry before this run
    write: BootWrite
    applied: bool  # the boot configuration was changed
    dry_run: bool
    retired: tuple[str, ...]  # removed options the running kernel may still carry
    state_file: Path
    state_changed: bool
    trial: Trial | None = None  # the armed or running trial taken away (dry: to take away)

    @property
    def backend(self) -> Backend | None:
        return self.detection.backend if self.detection is not None else None


def _detect_recorded(machine: Machine, state: State, config_path: Path | None) -> Detection:
    """The backend that wrote pmemd's options: as recorded, else as the config names it
    (a missing or invalid config is no obstacle: auto)."""
    if state.bootloader is None:
        try:
            config = read_config(machine, config_path).config
        except MachineError:
            config = None
        return detect(machine, config.boot.bootloader if config else BootloaderChoice.AUTO)
    try:
        choice = BootloaderChoice(state.bootloader)
    except ValueError:
        raise MachineError(f"{machine.state_file}: unknown bootloader "
                           f"{state.bootloader!r}") from None
    found = detect(machine, choice)
    probe = next(p for p in found.probes if p.kind is choice)
    why = f"{choice.value} (recorded in {machine.state_file} as the one that wrote them)"
    return replace(found, reason=f"{why}: {probe.reason}" if found.backend is not None
                   else f"{why}, but {probe.reason}")


def _running_cmdline(machine: Machine) -> Cmdline | None:
    """This boot's command line; ``None`` when unknown (e.g. a chroot without /proc)."""
    try:
        return read_cmdline(machine)
    except MachineError:
        return None


def hand_over(machine: Machine, runner: Runner, state: State, to: Backend, *,
              config_path: Path | None, dry_run: bool) -> Removal:
    """Take pmemd's options off the backend recorded as their writer, before ``to`` writes
    them. A recorded backend that cannot be used any more is an error: pmemd does not
    guess whether its options are still in that configuration."""
    try:
        return _take_back(machine, runner, state, config_path=config_path, dry_run=dry_run)
    except (MachineError, NoBootloader, BootConfigError) as err:
        raise type(err)(
            f"{err}; pmemd's options ({' '.join(state.owned)}) were written through "
            f"{state.bootloader}, and must come off there before {to.kind.value} writes "
            f"them: make {state.bootloader} usable again, or take them off by hand and "
            f"remove {machine.state_file}") from None


def remove_all(machine: Machine, runner: Runner, *, config_path: Path | None = None,
               dry_run: bool = False) -> Removal:
    """Take off the next boot's command line every option pmemd's state says it wrote (its
    ``memmap=`` options and ``nokaslr``; on Debian its drop-in goes with them), through the
    backend that wrote them, then clear that ownership. Never reboots. Nothing recorded:
    nothing is looked at, not even the bootloader."""
    return _take_back(machine, runner, read_state(machine), config_path=config_path,
                      dry_run=dry_run)


def _take_trial_back(machine: Machine, runner: Runner, state: State,
                     config_path: Path | None) -> State:
    """A trial armed or running goes first: its entry and its one-time selection, the
    default entry as it was (what pmemd owns there is taken back next)."""
    backend = _detect_recorded(machine, state, config_path).require()
    return end_trial(machine, runner, backend, state, Trial(), commit=False)


def _take_back(machine: Machine, runner: Runner, state: State, *,
               config_path: Path | None, dry_run: bool) -> Removal:
    """:func:`remove_all` for the ``state`` already read."""
    trial = None
    if state.trial.state in (TrialState.ARMED, TrialState.RUNNING):
        trial = state.trial
        if not dry_run:
            state = _take_trial_back(machine, runner, state, config_path)
    owned = state.owned
    if not owned and not dry_run:
        sweep_leftovers(machine, None, config_path)
        if trial is not None and not state.retired:
            # the trial's was the only change the next boot had: it is as this one now
            clear_reboot_required(machine)
    if not owned:
        return Removal((), None, None, BootWrite(), False, dry_run, (), machine.state_file,
                       trial is not None and not dry_run, trial)
    detection = _detect_recorded(machine, state, config_path)
    backend = detection.require()
    before_boot = backend.read_next_boot()
    edit = CmdlineEdit(remove=owned)
    write = backend.plan_write(before_boot, edit, ())
    running = _running_cmdline(machine)
    retired = tuple(a for a in merge_args(state.retired, owned)
                    if running is None or carries(running, a))
    if dry_run:
        return Removal(owned, detection, before_boot, write, False, True, retired,
                       machine.state_file, False, trial)
    applied = False
    sweep_leftovers(machine, backend, config_path)
    if not write.empty:
        apply_boot_write(backend, write, edit, runner)
        applied = True
    # Ownership goes only once the bootloader no longer carries the options: a crash before
    # this leaves them recorded, and the next run finds nothing left to remove but the record.
    changed = write_state(machine, State(
        retired=retired, bootloader=backend.kind.value if retired else None))
    if applied:
        mark_reboot_required(machine, "pmemd took its options off the next boot's kernel "
                             f"command line ({' '.join(owned)}); reboot to give the reserved "
                             "memory back\n")
    mark_degraded(machine, None)
    return Removal(owned, detection, before_boot, write, applied, False, retired,
                   machine.state_file, changed or trial is not None, trial)
