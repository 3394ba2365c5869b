"""``pmemd reconcile``: make the next boot's kernel command line match the config, at every
boot (``pmemd-reconcile.service``) or by hand.

Read the config, the machine and pmemd's state; detect the bootloader and read its default
entry; plan; write through the backend (atomically, checked, rolled back on failure);
record what pmemd owns; then handle the reboot: markers, and with ``boot.reboot: auto``
one guarded reboot.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pmemd.boot.apply import apply_boot_write, sweep_leftovers
from pmemd.boot.backends.base import Backend, BootWrite, NextBoot
from pmemd.boot.detect import Detection, detect, probed_paths
from pmemd.boot.reboot import (
    clear_reboot_required,
    explain_missing_options,
    mark_degraded,
    mark_reboot_required,
    read_boot_id,
    reboot_now,
    request_reboot,
)
from pmemd.boot.removal import Removal, hand_over
from pmemd.boot.trial import TrialNote, arm_or_write, settle_in_flight
from pmemd.core.cmdline import Cmdline, CmdlineEdit, carries, merge_args
from pmemd.core.events import reboot_refused
from pmemd.core.facts import MachineFacts
from pmemd.core.model import Config
from pmemd.core.plan import ChangeAction, Plan, PlanState, plan
from pmemd.core.reboot import (
    RebootAction,
    RebootDecision,
    decide_reboot,
    desired_digest,
    missing_on,
)
from pmemd.core.trial import TrialState
from pmemd.errors import ConfigError, RebootError
from pmemd.machine.facts import read_config, read_facts
from pmemd.machine.journal import send_event
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.machine.state import State, read_state, write_state

# The one finding that depends on where this boot's kernel lies (it moves under KASLR); the
# converged stamp checks it again itself rather than replaying it.
KERNEL_IMAGE_FINDING = "kernel-image-in-region"


def boot_edit(result: Plan) -> CmdlineEdit:
    return CmdlineEdit(
        add=tuple(c.argument for c in result.changes if c.action is ChangeAction.ADD),
        remove=tuple(c.argument for c in result.changes if c.action is ChangeAction.REMOVE))


def owned_after(result: Plan, owned: Sequence[str], edit: CmdlineEdit) -> tuple[str, ...]:
    """What pmemd owns once ``edit`` is made: the desired arguments it wrote, now or
    earlier (a desired argument the admin had already written stays the admin's)."""
    return tuple(a for a in result.desired_args if a in owned or a in edit.add)


@dataclass(frozen=True)
class Outcome:
    """What a reconcile found and did (or, in a dry run, would do)."""

    state: PlanState  # converged, reboot-required, degraded, changes-pending (dry run)
    before: Plan  # against the bootloader as it was: the changes and why
    plan: Plan  # against the bootloader as it is now (after writing)
    detection: Detection
    backend: Backend
    next_boot: NextBoot  # the default entry before this run wrote anything
    edit: CmdlineEdit
    write: BootWrite
    applied: bool
    dry_run: bool
    reboot: RebootDecision
    owned: tuple[str, ...]  # what pmemd owns afterwards
    retired: tuple[str, ...]  # pmemd's former options the running kernel still carries
    state_file: Path
    state_changed: bool
    inputs: tuple[Path, ...]  # everything this decision read (for the converged stamp)
    # pmemd's options taken off (dry run: to take off) the backend that wrote them before,
    # when it is not this run's backend
    handover: Removal | None = None
    trial: TrialNote | None = None  # what this run did about the trial boot

    @property
    def stampable(self) -> bool:
        """Converged with nothing written: the next run may skip the work when none of
        ``inputs`` changed (see pmemd.fastpath.converged)."""
        moving = any(w.code == KERNEL_IMAGE_FINDING for w in self.plan.warnings)
        return (self.state is PlanState.CONVERGED and not self.applied and not self.dry_run
                and self.write.empty and not self.state_changed and not moving
                and self.handover is None and self.trial is None)


def _inputs(machine: Machine, config_path: Path, backend: Backend,
            facts: MachineFacts) -> tuple[Path, ...]:
    kernel_config = facts.kernel.next_config_path  # shown as the path under the root
    return (
        config_path, machine.cmdline, machine.osrelease, machine.firmware_memmap,
        machine.iomem, machine.boot, *((Path(kernel_config),) if kernel_config else ()),
        machine.state_file, *backend.inputs(), *probed_paths(machine),
        machine.runtime_reboot_required, machine.runtime_degraded,
    )


class _Validity:
    """Refuses a plan with problems; the first valid one runs ``when_valid`` (once)."""

    def __init__(self, when_valid: Callable[[], object] | None) -> None:
        self.when_valid = when_valid

    def require(self, found: Plan) -> Plan:
        if found.problems:
            raise ConfigError(found.problems)
        if self.when_valid is not None:
            run, self.when_valid = self.when_valid, None
            run()
        return found


@dataclass(frozen=True)
class _Read:
    """What one reconcile reads before it decides anything."""

    config: Config
    facts: MachineFacts
    state: State
    detection: Detection
    backend: Backend


def _read(machine: Machine, config_path: Path | None) -> _Read:
    config = read_config(machine, config_path).require()
    detection = detect(machine, config.boot.bootloader)
    return _Read(config, read_facts(machine), read_state(machine), detection,
                 detection.require())


def reconcile(machine: Machine, runner: Runner, *, config_path: Path | None = None,
              dry_run: bool = False, reboot: Callable[[], None] = request_reboot,
              live: bool | None = None,
              when_valid: Callable[[], object] | None = None) -> Outcome:
    """``live``: the tree is the running system, which ``boot.reboot: auto`` may reboot
    (default: only when it is ``/``). ``when_valid`` runs once the config is known to be
    valid, before anything is written (an invalid config writes nothing at all)."""
    read = _read(machine, config_path)
    config, facts, backend = read.config, read.facts, read.backend
    validity = _Validity(when_valid)
    state, handover = read.state, None
    if state.owned and state.bootloader not in (None, backend.kind.value):
        # The options pmemd owns were written through another backend (boot.bootloader
        # changed, or detection now finds another one): take them back through that one
        # first, so no bootloader configuration keeps options pmemd no longer tracks. An
        # invalid config hands nothing over.
        validity.require(plan(config, facts, next_boot=Cmdline(())))
        handover = hand_over(machine, runner, state, backend, config_path=config_path,
                             dry_run=dry_run)
        state = replace(state, owned=(), retired=handover.retired,
                        bootloader=state.bootloader if handover.retired else None)
    if not dry_run:
        sweep_leftovers(machine, backend, config_path)
    before_boot = backend.read_next_boot()
    # An unknown next boot (no grub.cfg yet, no entries) carries nothing: everything is added.
    before = validity.require(plan(config, facts, owned=state.owned,
                                   next_boot=before_boot.cmdline or Cmdline(())))
    edit = boot_edit(before)
    owned = owned_after(before, state.owned, edit)
    digest = desired_digest(before.desired_args)
    state, trial, hold = settle_in_flight(machine, runner, backend, state,
                                          running=facts.cmdline, digest=digest,
                                          dry_run=dry_run)
    write = BootWrite() if hold else backend.plan_write(before_boot, edit, owned)
    if not write.empty:
        state, trial = arm_or_write(machine, runner, backend, state, mode=config.boot.trial,
                                    current=before_boot, edit=edit, desired=owned,
                                    digest=digest, dry_run=dry_run)
        if trial.action != "direct":
            write = trial.write  # the trial's (armed), or nothing (held)
    direct = trial is None or trial.action == "direct"
    if not direct:  # armed or held: the default entry, and what pmemd owns, stay as they are
        owned = state.owned
    applied = not write.empty and not dry_run
    after_boot, result = before_boot, before
    if applied and direct:
        claim = replace(state, owned=merge_args(state.owned, edit.add),
                        bootloader=backend.kind.value)
        after_boot = apply_boot_write(backend, write, edit, runner,
                                      before=functools.partial(write_state, machine, claim))
        result = plan(config, facts, owned=owned, next_boot=after_boot.cmdline)
    removed = edit.remove if direct else ()
    retired = tuple(a for a in merge_args(state.retired, removed)
                    if a not in owned and carries(facts.cmdline, a))
    guard = _Guard(machine, read, state, result, retired, after_boot,
                   rewritten=applied and direct,
                   trial_boot=trial is not None and trial.action == "running")
    decision = guard.decide(allowed=(machine.root == Path("/") if live is None else live)
                            and not dry_run)
    changed = False if dry_run else guard.record(decision, owned, reboot)
    return Outcome(
        state=_final_state(decision, guard.needed, dry_run=dry_run, writes=not write.empty),
        before=before, plan=result, detection=read.detection, backend=backend,
        next_boot=before_boot, edit=edit, write=write, applied=applied,
        dry_run=dry_run, reboot=decision, owned=owned, retired=retired,
        state_file=machine.state_file, state_changed=changed,
        inputs=_inputs(machine, config_path or machine.config, backend, facts),
        handover=handover, trial=trial)


def _final_state(decision: RebootDecision, needed: bool, *, dry_run: bool, writes: bool
                 ) -> PlanState:
    if dry_run and writes:
        return PlanState.CHANGES_PENDING
    if decision.action is RebootAction.DEGRADED:
        return PlanState.DEGRADED
    return PlanState.REBOOT_REQUIRED if needed else PlanState.CONVERGED


@dataclass(frozen=True)
class _Guard:
    """The reboot guard for one reconcile: whether the running kernel must be replaced,
    what to do about it, and the record of it (markers, state, the reboot itself)."""

    machine: Machine
    read: _Read
    state: State
    result: Plan  # against the bootloader as it is now
    retired: tuple[str, ...]
    after_boot: NextBoot
    rewritten: bool  # this run wrote the bootloader configuration
    # this boot is the trial boot: its kernel carries the options tried, the default entry
    # not yet; pmemd-trial.service judges it, not the reboot guard
    trial_boot: bool = False

    @property
    def needed(self) -> bool:
        if self.trial_boot:
            return False
        return self.result.reboot_required or bool(self.retired)

    @property
    def digest(self) -> str:
        return desired_digest(self.result.desired_args)

    def cause(self) -> str:
        """Why the running kernel lacks options the next boot carries (for degraded)."""
        trial = self.state.trial
        if trial.state is TrialState.FAILED and trial.digest == self.digest:
            return f"a trial boot of these options failed: {trial.reason}"
        running = self.read.facts.cmdline
        missing = missing_on(running, self.result.desired_args) or self.retired
        pending = self.state.pending
        lost = self.rewritten and pending is not None and pending.digest == self.digest
        return explain_missing_options(running, self.after_boot, missing,
                                       self.read.detection.reason, rewritten=lost)

    def decide(self, *, allowed: bool) -> RebootDecision:
        if self.trial_boot:
            return RebootDecision(RebootAction.NONE, self.state.pending,
                                  "this boot is the trial boot: pmemd-trial.service decides")
        return decide_reboot(needed=self.needed, digest=self.digest,
                             boot_id=read_boot_id(self.machine), pending=self.state.pending,
                             policy=self.read.config.boot.reboot, allowed=allowed,
                             cause=self.cause)

    def record(self, decision: RebootDecision, owned: tuple[str, ...],
               reboot: Callable[[], None]) -> bool:
        """Markers, the state file and, when decided, the reboot; says whether the state
        file changed."""
        machine = self.machine
        degraded = decision.message if decision.action is RebootAction.DEGRADED else None
        if self.needed:
            mark_reboot_required(machine, f"{decision.message}\n")
        else:
            clear_reboot_required(machine)
        mark_degraded(machine, degraded)
        bootloader = self.read.backend.kind.value if owned or self.retired else None
        new_state = State(owned=owned, retired=self.retired, bootloader=bootloader,
                          pending=decision.pending, degraded=degraded,
                          trial=self.state.trial)
        changed = write_state(machine, new_state)
        if _refused(decision):
            send_event(machine, reboot_refused(decision.message))
        if decision.action is RebootAction.REBOOT:
            try:
                reboot_now(machine, reboot, decision.message)
            except RebootError:
                assert decision.pending is not None
                write_state(machine, replace(new_state, pending=replace(decision.pending,
                                                                        rebooted=False)))
                raise
        return changed


def _refused(decision: RebootDecision) -> bool:
    """The guard keeps pmemd from rebooting (again) although the kernel lacks the options:
    degraded, or it already asked on this boot."""
    return decision.action is RebootAction.DEGRADED or (
        decision.action is RebootAction.MARK and decision.pending is not None
        and decision.pending.rebooted)
