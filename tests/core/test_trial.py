"""The trial boot's decisions as tables: arming, the boot after, the verdict, retry and
abort; and a property: whatever boots follow, a trial ends committed only on a boot whose
command line carries its mark and every option it tried."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmemd.core.cmdline import Cmdline, parse_cmdline
from pmemd.core.devices import DeviceState, RegionDevice
from pmemd.core.model import TrialMode
from pmemd.core.ranges import MemRange
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

OPTIONS = ("memmap=4G!12G",)
ARMED = armed("d1", OPTIONS, "boot-a")
RUNNING = Trial(TrialState.RUNNING, "d1", OPTIONS, "boot-a", "boot-b")
FAILED = Trial(TrialState.FAILED, "d1", OPTIONS, "boot-a", "boot-b", "it panicked")
COMMITTED = Trial(TrialState.COMMITTED, "d1", OPTIONS, "boot-a", "boot-b")


def cmdline(text: str) -> Cmdline:
    return parse_cmdline(text)


@pytest.mark.parametrize(("mode", "trial", "digest", "adds", "unsupported", "action", "says"), [
    (TrialMode.AUTO, Trial(), "d1", True, None, ArmAction.ARM, "tries the new options once"),
    (TrialMode.NEVER, Trial(), "d1", True, None, ArmAction.DIRECT, "boot.trial: never"),
    (TrialMode.AUTO, Trial(), "d1", False, None, ArmAction.DIRECT, "only removes"),
    (TrialMode.AUTO, Trial(), "d1", True, "/boot is on LVM", ArmAction.DIRECT,
     "no trial boot here (/boot is on LVM)"),
    (TrialMode.AUTO, FAILED, "d1", True, None, ArmAction.HOLD, "pmemctl trial retry"),
    (TrialMode.AUTO, FAILED, "d2", True, None, ArmAction.ARM, "tries"),  # the config changed
    (TrialMode.AUTO, ARMED, "d1", True, None, ArmAction.HOLD, "is armed"),
    (TrialMode.AUTO, RUNNING, "d1", True, None, ArmAction.HOLD, "is running"),
    (TrialMode.AUTO, ARMED, "d2", True, None, ArmAction.ARM, "tries"),  # re-armed, new options
    (TrialMode.AUTO, COMMITTED, "d1", True, None, ArmAction.ARM, "tries"),
    (TrialMode.NEVER, FAILED, "d1", True, None, ArmAction.DIRECT, "never"),
    (TrialMode.REQUIRED, Trial(), "d1", True, None, ArmAction.ARM, "tries"),
    (TrialMode.REQUIRED, Trial(), "d1", True, "/boot is on LVM", ArmAction.HOLD,
     "boot.trial: required, but no trial boot here (/boot is on LVM): nothing is written"),
    (TrialMode.REQUIRED, Trial(), "d1", False, "/boot is on LVM", ArmAction.DIRECT,
     "only removes"),
    (TrialMode.REQUIRED, FAILED, "d1", True, None, ArmAction.HOLD, "pmemctl trial retry"),
], ids=["first", "never", "removal-only", "unsupported", "failed-same", "failed-other",
        "armed-same", "running-same", "armed-other", "committed-before", "never-after-failure",
        "required", "required-unsupported", "required-removal-only", "required-failed"])
def test_arming(mode: TrialMode, trial: Trial, digest: str, adds: bool,
                unsupported: str | None, action: ArmAction, says: str) -> None:
    decision = decide_arm(mode=mode, trial=trial, digest=digest, adds=adds,
                          unsupported=unsupported)
    assert decision.action is action
    assert says in decision.message


@pytest.mark.parametrize(("trial", "boot_id", "running", "action", "state"), [
    (Trial(), "boot-b", "ro", BootAction.NONE, TrialState.NONE),
    (ARMED, "boot-a", "ro", BootAction.WAIT, TrialState.ARMED),  # not rebooted yet
    (ARMED, None, "ro", BootAction.WAIT, TrialState.ARMED),  # boot id unknown
    (ARMED, "boot-b", f"ro memmap=4G!12G {mark_for('d1')}", BootAction.VERIFY,
     TrialState.RUNNING),
    (ARMED, "boot-b", "ro", BootAction.FAILED, TrialState.FAILED),  # the default entry ran
    (ARMED, "boot-b", f"ro {mark_for('d0')}", BootAction.FAILED, TrialState.FAILED),  # older
    (RUNNING, "boot-b", f"ro memmap=4G!12G {mark_for('d1')}", BootAction.VERIFY,
     TrialState.RUNNING),  # verified again on the same boot
    (RUNNING, "boot-c", "ro", BootAction.FAILED, TrialState.FAILED),  # died unverified
    (FAILED, "boot-c", "ro", BootAction.NONE, TrialState.FAILED),
    (COMMITTED, "boot-c", "ro memmap=4G!12G", BootAction.NONE, TrialState.COMMITTED),
], ids=["none", "same-boot", "unknown-boot", "trial-boot", "default-ran", "other-mark",
        "running-again", "running-died", "failed-stays", "committed-stays"])
def test_the_boot_after(trial: Trial, boot_id: str | None, running: str, action: BootAction,
                        state: TrialState) -> None:
    step = decide_trial_boot(trial, boot_id=boot_id, running=cmdline(running))
    assert step.action is action
    assert step.trial.state is state
    if action is BootAction.VERIFY:
        assert step.trial.booted == boot_id
    if action is BootAction.FAILED:
        assert step.trial.reason


def test_a_trial_whose_boot_never_came_up_says_so() -> None:
    step = decide_trial_boot(ARMED, boot_id="boot-b", running=cmdline("ro"))
    assert "did not come up" in step.trial.reason
    assert step.trial.booted == "boot-b"


@pytest.mark.parametrize(("running", "problems", "state", "says"), [
    (f"ro memmap=4G!12G {mark_for('d1')}", (), TrialState.COMMITTED, "verified"),
    (f"ro {mark_for('d1')}", (), TrialState.FAILED, "lacks memmap=4G!12G"),
    (f"ro memmap=4G!12G {mark_for('d1')}", ("region data: no /dev/pmem device at 12 GiB",),
     TrialState.FAILED, "region data"),
], ids=["good", "option-missing", "device-missing"])
def test_the_verdict(running: str, problems: tuple[str, ...], state: TrialState,
                     says: str) -> None:
    verdict = decide_verdict(RUNNING, cmdline(running), problems)
    assert verdict.state is state
    assert says in verdict.reason


@pytest.mark.parametrize(("trial", "after"), [
    (FAILED, Trial()), (ARMED, None), (Trial(), None), (COMMITTED, None)])
def test_retry(trial: Trial, after: Trial | None) -> None:
    assert retried(trial) == after


def test_abort_holds_the_options_until_the_admin_retries() -> None:
    after = aborted(ARMED)
    assert after is not None and after.state is TrialState.FAILED
    assert "aborted" in after.reason
    assert decide_arm(mode=TrialMode.AUTO, trial=after, digest="d1", adds=True,
                      unsupported=None).action is ArmAction.HOLD
    assert aborted(RUNNING) is None and aborted(Trial()) is None


BOOTS = st.lists(st.tuples(st.sampled_from(["boot-a", "boot-b", "boot-c", None]),
                           st.booleans(), st.booleans(), st.booleans()), max_size=6)


@given(BOOTS)
def test_committed_only_on_a_boot_that_carried_the_mark_and_the_options(
        boots: list[tuple[str | None, bool, bool, bool]]) -> None:
    trial = ARMED
    for boot_id, has_mark, has_options, healthy in boots:
        text = " ".join(["ro", *(OPTIONS if has_options else ()),
                         *([mark_for("d1")] if has_mark else [])])
        running = cmdline(text)
        step = decide_trial_boot(trial, boot_id=boot_id, running=running)
        trial = step.trial
        if step.action is BootAction.VERIFY:
            trial = decide_verdict(trial, running, () if healthy else ("region data: gone",))
            if trial.state is TrialState.COMMITTED:
                assert has_mark and has_options and healthy
                assert boot_id not in (None, "boot-a")
        assert trial.state is not TrialState.ARMED or boot_id in (None, "boot-a")


@pytest.mark.parametrize(("line", "problem"), [
    ("ro quiet", False),
    ("ro panic=0", True),
    ("ro panic=0x0 quiet", True),
    ("ro panic=30", False),
    ("ro panic=-1", False),  # a negative timeout resets at once
    ("ro panic=bogus", False),  # the kernel ignores it; the trial's panic= stands
    ("ro -- panic=0", False),  # init's argument, not the kernel's
])
def test_a_default_entry_that_says_panic_0_would_keep_a_panicking_trial_down(
        line: str, problem: bool) -> None:
    found = panic_problem(cmdline(line))
    assert (found is not None) is problem
    if found is not None:
        assert "would halt instead of coming back" in found


_RANGE = MemRange.sized(1 << 30, 512 << 20)


@pytest.mark.parametrize(("states", "failing"), [
    ({"a": DeviceState.READY, "b": DeviceState.READY}, []),
    # a DAX mount that falls back to 4 KiB faults works, only slower: not the boot's fault
    ({"a": DeviceState.READY, "b": DeviceState.NO_PMD}, []),
    ({"a": DeviceState.READY, "b": DeviceState.MISSING}, ["b"]),
    ({"a": DeviceState.NOT_DAX, "b": DeviceState.NOT_MOUNTED}, ["a", "b"]),
    ({"a": DeviceState.MISMATCH, "b": DeviceState.UNKNOWN}, ["a", "b"]),
    ({"a": DeviceState.READY}, ["b"]),  # b's device could not be read
])
def test_which_regions_fail_a_trial_boot(states: dict[str, DeviceState],
                                         failing: list[str]) -> None:
    devices = [RegionDevice(name, _RANGE, state, f"{name} is {state.value}")
               for name, state in states.items()]
    problems = unverified_regions(["a", "b"], devices)
    assert [p.split("'")[1] for p in problems] == failing
    if "b" in failing and "b" not in states:
        assert problems[-1] == "region 'b': its device could not be read on this boot"
