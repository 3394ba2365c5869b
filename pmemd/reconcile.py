"""``pmemd reconcile``: make the next boot's kernel command line match the config, at every
boot (``pmemd-reconcile.service``) or by hand.

Read the config, the machine and pmemd's state; detect the bootloader and read its default
entry; plan; write through the backend (atomically, checked, rolled back on failure);
record what pmemd owns; then handle the reboot: markers, and with ``boot.reboot: auto``
one guarded reboot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pmemd.atomic import Transaction
from pmemd.bootloader.apply import apply_boot_write
from pmemd.bootloader.base import Backend, BootWrite, CmdlineEdit, NextBoot, carries
from pmemd.bootloader.detect import Detection, detect, probed_paths
from pmemd.errors import ConfigError, MachineError
from pmemd.facts import read_cmdline, read_config, read_facts
from pmemd.machine import Machine
from pmemd.model import (
    BootloaderChoice,
    ChangeAction,
    Cmdline,
    CmdlineChange,
    Config,
    KaslrPolicy,
    MachineFacts,
    Plan,
    PlanState,
)
from pmemd.plan import NOKASLR, plan
from pmemd.reboot import (
    RebootAction,
    RebootDecision,
    RebootError,
    clear_reboot_required,
    decide_reboot,
    explain_missing_options,
    mark_degraded,
    mark_reboot_required,
    missing_on,
    read_boot_id,
    request_reboot,
)
from pmemd.runner import Runner
from pmemd.state import State, desired_digest, read_state, write_state

# The one finding that depends on where this boot's kernel lies (it moves under KASLR); the
# converged stamp checks it again itself rather than replaying it.
KERNEL_IMAGE_FINDING = "kernel-image-in-region"


def plan_boot(config: Config, facts: MachineFacts, owned: Iterable[str],
              next_boot: Cmdline | None) -> Plan:
    """:func:`pmemd.plan.plan`, plus taking off a ``nokaslr`` pmemd wrote once
    ``boot.kaslr`` no longer asks for it."""
    owned = tuple(owned)
    result = plan(config, facts, owned=owned, next_boot=next_boot)
    target = next_boot if next_boot is not None else facts.cmdline
    if (NOKASLR in owned and config.boot.kaslr is not KaslrPolicy.DISABLE
            and target.has_flag(NOKASLR)):
        change = CmdlineChange(ChangeAction.REMOVE, NOKASLR,
                               "written by pmemd; boot.kaslr is no longer 'disable'")
        state = (result.state if result.state is PlanState.INVALID_CONFIG
                 else PlanState.CHANGES_PENDING)
        result = replace(result, changes=(*result.changes, change), state=state,
                         reboot_required=True)
    return result


def boot_edit(result: Plan) -> CmdlineEdit:
    return CmdlineEdit(
        add=tuple(c.argument for c in result.changes if c.action is ChangeAction.ADD),
        remove=tuple(c.argument for c in result.changes if c.action is ChangeAction.REMOVE))


def owned_after(result: Plan, owned: Sequence[str], edit: CmdlineEdit) -> tuple[str, ...]:
    """What pmemd owns once ``edit`` is made: the desired arguments it wrote, now or
    earlier (a desired argument the admin had already written stays the admin's)."""
    return tuple(a for a in result.desired_args if a in owned or a in edit.add)


@dataclass(frozen=True)
class BootView:
    """Which bootloader ``pmemd plan`` found and what its next boot carries; unlike
    reconcile, plan works without one (changes are then judged against the running
    command line)."""

    detection: Detection
    next_boot: NextBoot | None
    owned: tuple[str, ...]

    @property
    def target(self) -> Cmdline | None:
        if self.next_boot is None:
            return None
        return self.next_boot.cmdline or Cmdline(())


def read_boot_view(machine: Machine, config: Config | None) -> BootView:
    """``config``: the bootloader it names; ``None`` (no usable config): auto-detected."""
    detection = detect(machine, config.boot.bootloader if config is not None
                       else BootloaderChoice.AUTO)
    owned = read_state(machine).owned
    if detection.backend is None:
        return BootView(detection, None, owned)
    try:
        next_boot = detection.backend.read_next_boot()
    except MachineError as err:
        next_boot = NextBoot(None, str(err), note="unreadable")
    return BootView(detection, next_boot, owned)


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

    @property
    def stampable(self) -> bool:
        """Converged with nothing written: the next run may skip the work when none of
        ``inputs`` changed (see pmemd.bootloader.stamp)."""
        moving = any(w.code == KERNEL_IMAGE_FINDING for w in self.plan.warnings)
        return (self.state is PlanState.CONVERGED and not self.applied and not self.dry_run
                and self.write.empty and not self.state_changed and not moving
                and self.handover is None)


def _merge(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *second)))


def _inputs(machine: Machine, config_path: Path, backend: Backend,
            facts: MachineFacts) -> tuple[Path, ...]:
    kernel_config = facts.kernel.next_config_path  # shown as the path under the root
    return (
        config_path, machine.cmdline, machine.osrelease, machine.firmware_memmap,
        machine.iomem, machine.boot, *((Path(kernel_config),) if kernel_config else ()),
        machine.state_file, *backend.inputs(), *probed_paths(machine),
        machine.runtime_reboot_required, machine.runtime_degraded,
    )


def reconcile(machine: Machine, runner: Runner, *, config_path: Path | None = None,
              dry_run: bool = False, reboot: Callable[[], None] = request_reboot,
              live: bool | None = None,
              when_valid: Callable[[], object] | None = None) -> Outcome:
    """``live``: the tree is the running system, which ``boot.reboot: auto`` may reboot
    (default: only when it is ``/``). ``when_valid`` runs once the config is known to be
    valid, before anything is written (an invalid config writes nothing at all)."""
    config_file = config_path if config_path is not None else machine.config
    config = read_config(machine, config_path)
    facts = read_facts(machine)
    state = read_state(machine)
    detection = detect(machine, config.boot.bootloader)
    backend = detection.require()

    def valid(found: Plan) -> Plan:
        """``found``, unless it has problems; the first valid one runs ``when_valid``."""
        nonlocal when_valid
        if found.problems:
            raise ConfigError(found.problems)
        if when_valid is not None:
            run, when_valid = when_valid, None
            run()
        return found

    handover: Removal | None = None
    if state.owned and state.bootloader not in (None, backend.kind.value):
        # The options pmemd owns were written through another backend (boot.bootloader
        # changed, or detection now finds another one): take them back through that one
        # first, so no bootloader configuration keeps options pmemd no longer tracks. An
        # invalid config hands nothing over.
        valid(plan_boot(config, facts, (), Cmdline(())))
        handover = _hand_over(machine, runner, state, backend, config_path=config_path,
                              dry_run=dry_run)
        state = replace(state, owned=(), retired=handover.retired,
                        bootloader=state.bootloader if handover.retired else None)
    before_boot = backend.read_next_boot()
    # An unknown next boot (no grub.cfg yet, no entries) carries nothing: everything is added.
    before = valid(plan_boot(config, facts, state.owned, before_boot.cmdline or Cmdline(())))
    edit = boot_edit(before)
    owned = owned_after(before, state.owned, edit)
    write = backend.plan_write(before_boot, edit, owned)

    applied = False
    result = before
    if not write.empty and not dry_run:
        claim = replace(state, owned=_merge(state.owned, edit.add), bootloader=backend.kind.value)

        def record_claim(transaction: Transaction) -> None:
            write_state(machine, claim, transaction)

        after_boot = apply_boot_write(backend, write, edit, runner, before=record_claim)
        applied = True
        result = plan_boot(config, facts, owned, after_boot.cmdline)
    else:
        after_boot = before_boot

    retired = tuple(a for a in _merge(state.retired, edit.remove)
                    if a not in owned and carries(facts.cmdline, a))
    needed = result.reboot_required or bool(retired)
    boot_id = read_boot_id(machine)
    digest = desired_digest(result.desired_args)
    rewritten = applied and state.pending is not None and state.pending.digest == digest

    def cause() -> str:
        missing = missing_on(facts.cmdline, result.desired_args) or retired
        return explain_missing_options(facts.cmdline, after_boot, missing, detection.reason,
                                       rewritten=rewritten)

    decision = decide_reboot(needed=needed, digest=digest,
                             boot_id=boot_id, pending=state.pending, policy=config.boot.reboot,
                             allowed=(machine.root == Path("/") if live is None else live)
                             and not dry_run, cause=cause)
    degraded = decision.message if decision.action is RebootAction.DEGRADED else None
    if dry_run and not write.empty:
        final = PlanState.CHANGES_PENDING
    elif degraded is not None:
        final = PlanState.DEGRADED
    elif needed:
        final = PlanState.REBOOT_REQUIRED
    else:
        final = PlanState.CONVERGED

    new_state = State(owned=owned, retired=retired,
                      bootloader=backend.kind.value if owned or retired else None,
                      pending=decision.pending, degraded=degraded)
    changed = False
    if not dry_run:
        if needed:
            mark_reboot_required(machine, f"{decision.message}\n")
        else:
            clear_reboot_required(machine)
        mark_degraded(machine, degraded)
        changed = write_state(machine, new_state)
        if decision.action is RebootAction.REBOOT:
            try:
                reboot()
            except RebootError:
                assert decision.pending is not None
                write_state(machine, replace(new_state, pending=replace(decision.pending,
                                                                        rebooted=False)))
                raise
    return Outcome(
        state=final, before=before, plan=result, detection=detection, backend=backend,
        next_boot=before_boot, edit=edit, write=write, applied=applied, dry_run=dry_run,
        reboot=decision, owned=owned, retired=retired, state_file=machine.state_file,
        state_changed=changed, inputs=_inputs(machine, config_file, backend, facts),
        handover=handover)


# --- taking everything back (package removal) -------------------------------------------------


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

    @property
    def backend(self) -> Backend | None:
        return self.detection.backend if self.detection is not None else None


def _detect_recorded(machine: Machine, state: State, config_path: Path | None) -> Detection:
    """The backend that wrote pmemd's options: as recorded, else as the config names it
    (a missing or invalid config is no obstacle: auto)."""
    if state.bootloader is None:
        try:
            choice = read_config(machine, config_path).boot.bootloader
        except (ConfigError, MachineError):
            choice = BootloaderChoice.AUTO
        return detect(machine, choice)
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


def _hand_over(machine: Machine, runner: Runner, state: State, to: Backend, *,
               config_path: Path | None, dry_run: bool) -> Removal:
    """Take pmemd's options off the backend recorded as their writer, before ``to`` writes
    them. A recorded backend that cannot be used any more is an error: pmemd does not
    guess whether its options are still in that configuration."""
    try:
        return _take_back(machine, runner, state, config_path=config_path, dry_run=dry_run)
    except MachineError as err:
        raise MachineError(
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


def _take_back(machine: Machine, runner: Runner, state: State, *,
               config_path: Path | None, dry_run: bool) -> Removal:
    """:func:`remove_all` for the ``state`` already read."""
    owned = state.owned
    if not owned:
        return Removal((), None, None, BootWrite(), False, dry_run, (), machine.state_file,
                       False)
    detection = _detect_recorded(machine, state, config_path)
    backend = detection.require()
    before_boot = backend.read_next_boot()
    edit = CmdlineEdit(remove=owned)
    write = backend.plan_write(before_boot, edit, ())
    running = _running_cmdline(machine)
    retired = tuple(a for a in _merge(state.retired, owned)
                    if running is None or carries(running, a))
    if dry_run:
        return Removal(owned, detection, before_boot, write, False, True, retired,
                       machine.state_file, False)
    applied = False
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
                   machine.state_file, changed)
