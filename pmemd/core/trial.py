"""(pure) The trial boot's decisions: a change of pmemd's options is booted *once* before it
becomes the default.

A trial is *armed* by giving the bootloader a one-time entry that carries the new options
and a mark, ``pmemd.trial=DIGEST``, while the default entry keeps the old ones. The boot
after that either runs the trial entry (its command line has the mark: the trial is
*running*, and pmemd verifies it) or the default one (the trial boot never reached pmemd:
it panicked and was reset, hung until a watchdog reset it, or the one-time selection was
lost — the trial *failed*). A verified trial is *committed*: the options go into the
default entry. A failed one is not tried again for the same options until the admin asks
(retry) or the config changes.

The mark's name has a dot, so the kernel takes it for a parameter of a module that does
not exist and ignores it: it reaches neither init nor the kernel's warnings, but
``/proc/cmdline`` shows it. The files and commands are :mod:`pmemd.boot.trial`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from pmemd.core.cmdline import Cmdline, carries
from pmemd.core.devices import DeviceState, RegionDevice
from pmemd.core.model import TrialMode

MARK = "pmemd.trial"


class TrialState(StrEnum):
    NONE = "none"  # no trial: the default entry is what boots
    ARMED = "armed"  # the one-time entry is set up; the next boot tries it
    RUNNING = "running"  # this boot is the trial: it is being verified
    COMMITTED = "committed"  # verified; the options are in the default entry
    FAILED = "failed"  # the trial boot did not come up, or was not verified


@dataclass(frozen=True)
class Trial:
    """What pmemd remembers of the last trial (``/var/lib/pmemd/trial.json``)."""

    state: TrialState = TrialState.NONE
    digest: str | None = None  # of the options tried (see core.reboot.desired_digest)
    options: tuple[str, ...] = ()  # pmemd's options on the trial entry
    armed_on: str | None = None  # the boot on which the trial was armed
    booted: str | None = None  # the trial's own boot (running, committed, failed on it)
    reason: str = ""  # why it failed, or how it ended

    @property
    def mark(self) -> str:
        return mark_for(self.digest or "")


def mark_for(digest: str) -> str:
    """The option only the trial entry carries: ``pmemd.trial=DIGEST``."""
    return f"{MARK}={digest}"


# --- arming -----------------------------------------------------------------------------


class ArmAction(StrEnum):
    ARM = "arm"  # write the one-time entry, not the default one
    DIRECT = "direct"  # write the default entry (no trial: never, unsupported, removal)
    HOLD = "hold"  # write nothing: a trial of these options is armed, running or failed


@dataclass(frozen=True)
class ArmDecision:
    action: ArmAction
    message: str  # why, in words for `pmemd plan` and the journal


def decide_arm(*, mode: TrialMode, trial: Trial, digest: str, adds: bool,
               unsupported: str | None) -> ArmDecision:
    """(pure) How a change of pmemd's options reaches the bootloader.

    ``adds``: the change adds options (a change that only removes pmemd's options reserves
    nothing new and goes straight to the default entry). ``unsupported``: why this
    bootloader cannot boot an entry once, or None when it can.
    """
    if mode is TrialMode.NEVER:
        return ArmDecision(ArmAction.DIRECT, "boot.trial: never: the default entry is "
                                             "changed directly")
    if not adds:
        return ArmDecision(ArmAction.DIRECT, "only removes pmemd's options: the default "
                                             "entry is changed directly, without a trial")
    if unsupported is not None and mode is TrialMode.REQUIRED:
        return ArmDecision(ArmAction.HOLD, f"boot.trial: required, but no trial boot here "
                                           f"({unsupported}): nothing is written")
    if unsupported is not None:
        return ArmDecision(ArmAction.DIRECT, f"no trial boot here ({unsupported}): the "
                                             "default entry is changed directly")
    if trial.digest == digest and trial.state is TrialState.FAILED:
        return ArmDecision(ArmAction.HOLD, (
            f"a trial boot of these options failed ({trial.reason}); pmemd will not try "
            "them again until the config changes or 'pmemctl trial retry'"))
    if trial.digest == digest and trial.state in (TrialState.ARMED, TrialState.RUNNING):
        return ArmDecision(ArmAction.HOLD, f"the trial boot of these options is "
                                           f"{trial.state.value}")
    return ArmDecision(ArmAction.ARM, "the next boot tries the new options once; the "
                                      "default entry keeps the old ones until that boot "
                                      "is verified")


def panic_problem(cmdline: Cmdline | None) -> str | None:
    """(pure) Why the trial's ``panic=`` would not bring a panicking trial boot back: the
    default entry's own ``panic=0`` (the kernel keeps the last ``panic=``, and the admin's
    options may come after pmemd's). None when nothing stands in the way."""
    if cmdline is None:
        return None
    for value in cmdline.values("panic"):
        try:
            halts = int(value, 0) == 0
        except ValueError:
            continue
        if halts:
            return (f"the default entry's command line says panic={value}, which can outlast "
                    "the trial's panic=: a panicking trial boot would halt instead of "
                    "coming back")
    return None


def armed(digest: str, options: Sequence[str], boot_id: str | None) -> Trial:
    return Trial(TrialState.ARMED, digest, tuple(options), boot_id)


# --- the boot after ---------------------------------------------------------------------


class BootAction(StrEnum):
    NONE = "none"  # no trial in flight
    WAIT = "wait"  # armed on this very boot: the trial boot has not happened yet
    VERIFY = "verify"  # this is the trial boot: verify it, then commit or fail
    FAILED = "failed"  # the trial boot did not come up: the default entry ran instead


@dataclass(frozen=True)
class BootStep:
    action: BootAction
    trial: Trial  # what to remember afterwards


def decide_trial_boot(trial: Trial, *, boot_id: str | None, running: Cmdline) -> BootStep:
    """(pure) Which boot this is, for the trial in flight."""
    if trial.state is TrialState.ARMED:
        if boot_id is None or boot_id == trial.armed_on:
            return BootStep(BootAction.WAIT, trial)
        if carries(running, trial.mark):
            return BootStep(BootAction.VERIFY, replace(trial, state=TrialState.RUNNING,
                                                       booted=boot_id))
        return BootStep(BootAction.FAILED, replace(
            trial, state=TrialState.FAILED, booted=boot_id, reason=(
                "the trial boot did not come up: this boot runs the default entry (the "
                "trial boot panicked or hung and was reset, or the one-time selection was "
                "not used)")))
    if trial.state is TrialState.RUNNING:
        if boot_id is not None and boot_id != trial.booted:
            return BootStep(BootAction.FAILED, replace(trial, state=TrialState.FAILED, reason=(
                f"the trial boot {trial.booted} ended before pmemd had verified it")))
        return BootStep(BootAction.VERIFY, trial)
    return BootStep(BootAction.NONE, trial)


# A region's states that verify a trial boot: its device is there (and DAX-mounted). A DAX
# mount whose mappings fall back to 4 KiB faults (no-pmd) works, only slower; the boot's
# options are not at fault, so it does not fail the trial (the region stays degraded).
TRIAL_PASSES = (DeviceState.READY, DeviceState.NO_PMD)


def unverified_regions(names: Sequence[str], devices: Sequence[RegionDevice]) -> list[str]:
    """Why each of the regions ``names`` does not verify a trial boot: every region must be
    seen in a passing state; one whose device could not be read is not verified."""
    seen = {d.region: d for d in devices}
    return [f"region {name!r}: " + (seen[name].reason if name in seen else
                                    "its device could not be read on this boot")
            for name in names if name not in seen or seen[name].state not in TRIAL_PASSES]


def decide_verdict(trial: Trial, running: Cmdline, problems: Sequence[str]) -> Trial:
    """(pure) The running trial, verified: committed when its command line carries every
    option tried and nothing else was found wrong (``problems``: each region whose device
    is missing or whose filesystem is not mounted with DAX), failed otherwise."""
    missing = [o for o in trial.options if not carries(running, o)]
    found = [*(["the command line lacks " + " ".join(missing)] if missing else []),
             *problems]
    if found:
        return replace(trial, state=TrialState.FAILED,
                       reason="the trial boot came up but " + "; ".join(found))
    return replace(trial, state=TrialState.COMMITTED, reason="verified on its boot")


# --- what the admin asks ----------------------------------------------------------------


def retried(trial: Trial) -> Trial | None:
    """``pmemctl trial retry``: a failed trial forgotten, so the next change arms it again
    (None: nothing failed, nothing to retry)."""
    if trial.state is not TrialState.FAILED:
        return None
    return Trial()


def aborted(trial: Trial) -> Trial | None:
    """``pmemctl trial abort``: an armed trial disarmed (the caller removes its entry and
    the one-time selection); the options are held as if the trial had failed, so that they
    are not armed again by the next reconcile. None: nothing armed."""
    if trial.state is not TrialState.ARMED:
        return None
    return replace(trial, state=TrialState.FAILED, reason="aborted by the administrator")
