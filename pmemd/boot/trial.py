"""The trial boot's files and commands (the decisions are :mod:`pmemd.core.trial`'s).

Arming writes, through the backend and in one transaction with pmemd's state, a one-time
entry carrying the trial's options — pmemd's desired options, the trial's mark and
``panic=`` so that a crash resets the machine into the untouched default entry — and
selects it for the next boot only. It then checks what the bootloader will do: the default
entry exactly as before, the trial entry carrying every option tried. Anything else rolls
the whole change back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pmemd.boot.apply import apply_boot_write, verify_next_boot
from pmemd.boot.backends.base import Backend, BootWrite, NextBoot
from pmemd.boot.detect import detect
from pmemd.boot.reboot import (
    clear_reboot_required,
    mark_degraded,
    read_boot_id,
    reboot_now,
    request_reboot,
)
from pmemd.core.cmdline import Cmdline, CmdlineEdit, carries
from pmemd.core.events import trial_armed, trial_committed, trial_failed
from pmemd.core.model import RebootPolicy, TrialMode
from pmemd.core.plan import ChangeAction, Plan, plan
from pmemd.core.reboot import desired_digest
from pmemd.core.trial import (
    ArmAction,
    BootAction,
    Trial,
    TrialState,
    aborted,
    armed,
    decide_arm,
    decide_trial_boot,
    decide_verdict,
    mark_for,
    panic_problem,
    retried,
    unverified_regions,
)
from pmemd.errors import BootConfigError, CommandError, Refused
from pmemd.machine.atomic import Transaction
from pmemd.machine.facts import read_config, read_facts
from pmemd.machine.journal import send_event
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.machine.state import State, read_state, write_state

PANIC_SECONDS = 10  # a panicking trial boot resets after this long (panic=N)
# dracut's own way out of a failed initramfs: no shell to wait in, reboot instead
DRACUT_FALLBACK = ("rd.shell=0", "rd.emergency=reboot")



def trial_args(desired: Sequence[str], digest: str, *, dracut: bool = False
               ) -> tuple[str, ...]:
    """What the trial entry carries of pmemd's: the desired options, the mark, panic=
    (and, where dracut builds the initramfs, its options to reboot instead of waiting in
    an emergency shell; initramfs-tools panics, which panic= covers)."""
    return (*desired, mark_for(digest), f"panic={PANIC_SECONDS}",
            *(DRACUT_FALLBACK if dracut else ()))


def uses_dracut(machine: Machine) -> bool:
    return machine.dracut_dir.is_dir()


def arm_trial(machine: Machine, runner: Runner, backend: Backend, state: State, *,
              current: NextBoot, desired: Sequence[str], digest: str,
              boot_id: str | None) -> State:
    """Set the trial up for the next boot; the state afterwards (written with it)."""
    tried = trial_args(desired, digest, dracut=uses_dracut(machine))
    write = backend.plan_trial(current, state.owned, tried)
    after = replace(state, trial=armed(digest, tuple(desired), boot_id),
                    bootloader=backend.kind.value)

    def record(transaction: Transaction) -> None:
        write_state(machine, after, transaction)

    def check(next_boot: NextBoot) -> None:
        if next_boot.cmdline != current.cmdline:
            raise BootConfigError(f"after writing the trial, the default entry "
                                  f"({next_boot.describe()}) changed; it must not")
        entry = backend.read_trial()
        if entry is None:
            raise BootConfigError("after writing, the bootloader has no trial entry")
        missing = [a for a in tried if not carries(entry, a)]
        if missing:
            raise BootConfigError(f"after writing, the trial entry lacks {' '.join(missing)}")

    apply_boot_write(backend, write, CmdlineEdit(), runner, before=record, check=check)
    send_event(machine, trial_armed(backend.kind.value, desired))
    return after


def end_trial(machine: Machine, runner: Runner, backend: Backend, state: State,
              trial: Trial, *, commit: bool) -> State:
    """Take the trial entry and its one-time selection away; on ``commit`` the default entry
    then carries the options tried (pmemd owns them), otherwise it keeps pmemd's old ones.
    ``trial``: what to remember (committed, failed with its reason, aborted)."""
    current = backend.read_next_boot()
    owned = trial.options if commit else state.owned
    edit = CmdlineEdit(add=tuple(a for a in owned if a not in state.owned),
                       remove=tuple(a for a in state.owned if a not in owned))
    write = backend.plan_end_trial(current, owned, edit)
    after = replace(state, owned=owned, trial=trial,
                    bootloader=backend.kind.value if owned else None)

    def record(transaction: Transaction) -> None:
        write_state(machine, after, transaction)

    def check(next_boot: NextBoot) -> None:
        if commit:
            verify_next_boot(next_boot, edit)
        elif next_boot.cmdline != current.cmdline:
            raise BootConfigError(f"after taking the trial away, the default entry "
                                  f"({next_boot.describe()}) changed; it must not")
        if backend.read_trial() is not None:
            raise BootConfigError("after writing, the bootloader still has a trial entry")

    apply_boot_write(backend, write, edit, runner, before=record, check=check)
    return after


# --- inside a reconcile -------------------------------------------------------------------


@dataclass(frozen=True)
class TrialNote:
    """What a reconcile did about the trial boot, for its report."""

    action: str  # armed | hold | direct | running | failed | superseded
    message: str
    trial: Trial  # what pmemd remembers afterwards
    write: BootWrite = field(default_factory=BootWrite)  # the trial's writes, when armed


_PREVIOUS_BOOT = re.compile(r"^\s*-1\s+([0-9a-f]{32})\s", re.MULTILINE)


def previous_boot_journal(machine: Machine, runner: Runner) -> str:
    """How to read the previous boot's journal, by its id when the journal knows it
    (``journalctl -b 0f3c…``; the trial boot that did not come up is the boot before this
    one), else ``journalctl -b -1``."""
    if machine.root != Path("/"):
        return "journalctl -b -1"
    try:
        done = runner.run(["journalctl", "--list-boots", "--no-pager", "--quiet"],
                          check=False, mutating=False, timeout=30)
    except (CommandError, OSError):
        return "journalctl -b -1"
    found = _PREVIOUS_BOOT.search(done.stdout)
    return f"journalctl -b {found[1]}" if found else "journalctl -b -1"


def settle_in_flight(machine: Machine, runner: Runner, backend: Backend, state: State, *,
                     running: Cmdline, digest: str, dry_run: bool
                     ) -> tuple[State, TrialNote | None, bool]:
    """The trial armed or running when this reconcile starts: ``(state, note, hold)``.

    A trial whose boot did not come up is ended (failed: its entry taken away, the default
    kept). One armed or running for what the config still asks for holds every write (the
    verification decides); one the config no longer asks for is taken away (superseded)."""
    trial = state.trial
    if trial.state not in (TrialState.ARMED, TrialState.RUNNING):
        return state, None, False
    step = decide_trial_boot(trial, boot_id=read_boot_id(machine), running=running)
    if step.action is BootAction.FAILED:
        failed = replace(step.trial, reason=f"{step.trial.reason}; what it logged: "
                                            f"{previous_boot_journal(machine, runner)}")
        step = replace(step, trial=failed)
        ended = state
        if not dry_run:
            ended = end_trial(machine, runner, backend, state, step.trial, commit=False)
            send_event(machine, trial_failed(f"failed: {step.trial.reason}", step.trial.reason,
                                             step.trial.options))
        return ended, TrialNote("failed", f"the trial boot failed: {step.trial.reason}",
                                step.trial), False
    if trial.digest != digest:
        gone = replace(step.trial, state=TrialState.FAILED,
                       reason="superseded: the config changed before it was verified")
        ended = state if dry_run else end_trial(machine, runner, backend, state, gone,
                                                commit=False)
        return ended, TrialNote("superseded", gone.reason, gone), False
    if step.action is BootAction.VERIFY:
        return replace(state, trial=step.trial), TrialNote(
            "running", "this boot is the trial boot; pmemd-trial.service verifies it",
            step.trial), True
    return state, TrialNote("hold", "a trial boot of these options is armed: the next boot "
                            "tries them", trial), True


def trial_obstacle(backend: Backend, runner: Runner, default: Cmdline | None) -> str | None:
    """Why no trial can be armed here: the bootloader cannot boot an entry once (or not
    safely), or the default entry's own options would keep a panicking trial from coming
    back. None: a trial can be armed."""
    return backend.trial_support(runner) or panic_problem(default)


def arm_or_write(machine: Machine, runner: Runner, backend: Backend, state: State, *,
                 mode: TrialMode, current: NextBoot, edit: CmdlineEdit,
                 desired: Sequence[str], digest: str, dry_run: bool
                 ) -> tuple[State, TrialNote]:
    """A change to make: arm a trial, hold it, or let the caller write it directly (the
    note's action says which; ``state`` is the one after arming)."""
    unsupported = None
    if mode is not TrialMode.NEVER and edit.add:
        unsupported = trial_obstacle(backend, runner, current.cmdline)
    decision = decide_arm(mode=mode, trial=state.trial, digest=digest, adds=bool(edit.add),
                          unsupported=unsupported)
    if decision.action is ArmAction.DIRECT:
        return state, TrialNote("direct", decision.message, state.trial)
    if decision.action is ArmAction.HOLD:
        return state, TrialNote("hold", decision.message, state.trial)
    tried = trial_args(desired, digest, dracut=uses_dracut(machine))
    write = backend.plan_trial(current, state.owned, tried)
    if dry_run:
        return state, TrialNote("armed", decision.message,
                                armed(digest, tuple(desired), None), write)
    after = arm_trial(machine, runner, backend, state, current=current, desired=desired,
                      digest=digest, boot_id=read_boot_id(machine))
    return after, TrialNote("armed", decision.message, after.trial, write)


# --- on the trial boot ----------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """What ``pmemd verify-trial`` found and did."""

    action: str  # none (no trial boot to verify) | committed | failed
    message: str
    trial: Trial
    rebooting: bool = False
    journaled: bool = False  # the journal took the event (committed, failed)


def verify_trial(machine: Machine, runner: Runner, *, config_path: Path | None = None,
                 reboot: Callable[[], None] = request_reboot,
                 live: bool | None = None) -> Verification:
    """On the trial boot, once the regions' devices and mounts had their chance: commit the
    trial (its options become the default entry's) when this boot carries every option
    tried and every region is ready, else fail it (the default entry keeps the old ones)
    and, with ``boot.reboot: auto``, reboot back to them."""
    config = read_config(machine, config_path).require()
    facts = read_facts(machine, devices=True)  # each region's device and mount on this boot
    state = read_state(machine)
    step = decide_trial_boot(state.trial, boot_id=read_boot_id(machine), running=facts.cmdline)
    if step.action is not BootAction.VERIFY:
        return Verification("none", f"no trial boot to verify (trial: "
                                    f"{state.trial.state.value})", state.trial)
    backend = detect(machine, config.boot.bootloader).require()
    result = plan(config, facts, owned=state.owned)
    problems = unverified_regions([r.region.name for r in result.regions], result.devices)
    if desired_digest(result.desired_args) != step.trial.digest:
        problems.append("the config changed since the trial was armed")
    verdict = decide_verdict(step.trial, facts.cmdline, problems)
    committed = verdict.state is TrialState.COMMITTED
    end_trial(machine, runner, backend, state, verdict, commit=committed)
    if committed:
        message = "the trial boot is verified: its options are now the default entry's"
        sent = send_event(machine, trial_committed(message, verdict.options))
        return Verification("committed", message, verdict, journaled=sent)
    back = config.boot.reboot is RebootPolicy.AUTO and (
        machine.root == Path("/") if live is None else live)
    message = verdict.reason + (
        "; rebooting into the default entry, which keeps the old options" if back else
        "; the next boot is the default entry's, with the old options")
    sent = send_event(machine, trial_failed(message, verdict.reason, verdict.options))
    if back:
        reboot_now(machine, reboot, "the trial boot failed; back to the default entry")
    return Verification("failed", message, verdict, back, journaled=sent)


# --- what the admin asks (pmemctl trial retry | abort) -------------------------------------


def retry_trial(machine: Machine) -> State:
    """Forget a failed trial — and the reboot guard's memory of it — so that the next
    reconcile arms the same options again (the caller holds the change lock)."""
    state = read_state(machine)
    after = retried(state.trial)
    if after is None:
        raise Refused(f"there is no failed trial to retry (trial: {state.trial.state.value})")
    state = replace(state, trial=after, pending=None, degraded=None)
    write_state(machine, state)
    mark_degraded(machine, None)
    return state


def abort_trial(machine: Machine, runner: Runner, config_path: Path | None = None) -> State:
    """Disarm an armed trial: its entry and one-time selection go, the default entry is
    untouched, and its options are held (as after a failure) until retried or the config
    changes (the caller holds the change lock)."""
    state = read_state(machine)
    after = aborted(state.trial)
    if after is None:
        raise Refused(f"there is no armed trial to abort (trial: {state.trial.state.value})")
    config = read_config(machine, config_path).require()
    backend = detect(machine, config.boot.bootloader).require()
    ended = end_trial(machine, runner, backend, state, after, commit=False)
    running = read_facts(machine).cmdline
    if not ended.retired and all(carries(running, option) for option in ended.owned):
        clear_reboot_required(machine)  # the next boot is this one again
    return ended


# --- for pmemd plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialOutlook:
    """The last trial, and how the next change of pmemd's options would reach the boot."""

    trial: Trial
    next_change: str  # arm | direct | hold | none (nothing to change)
    why: str

    def document(self) -> dict[str, object]:
        return {"state": self.trial.state.value, "reason": self.trial.reason,
                "next_change": self.next_change, "why": self.why}

    def lines(self) -> list[str]:
        last = self.trial.state.value + (f": {self.trial.reason}" if self.trial.reason else "")
        out = [f"Trial:    {last}"]
        if self.next_change != "none":
            out.append(f"          the change: {self.why}")
        return out


def outlook(machine: Machine, result: Plan, backend: Backend | None, mode: TrialMode
            ) -> TrialOutlook:
    """``pmemd plan``'s view of the trial (also GetPlan's): what state.json records, and
    what :func:`decide_arm` would say about ``result``'s pending change (asking the
    bootloader whether it can boot an entry once: grub-probe, a query)."""
    trial = read_state(machine).trial
    adds = any(c.action is ChangeAction.ADD for c in result.changes)
    if all(c.action is ChangeAction.KEEP for c in result.changes):
        return TrialOutlook(trial, "none", "nothing to change")
    unsupported = None
    if mode is not TrialMode.NEVER and adds:
        unsupported = ("no bootloader detected" if backend is None
                       else trial_obstacle(backend, Runner(dry_run=True),
                                           backend.read_next_boot().cmdline))
    decision = decide_arm(mode=mode, trial=trial, digest=desired_digest(result.desired_args),
                          adds=adds, unsupported=unsupported)
    return TrialOutlook(trial, decision.action.value, decision.message)
