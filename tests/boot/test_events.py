"""The boot events in the journal, from the real reconcile, reboot guard and trial code on
the systemd-boot tree written by the real kernel-install
(tests/fixtures/bootloader/debian12-systemd-boot), with the tree's journald socket bound by
the test:

=================  ===================================================  ======================
event              code path                                            fields
=================  ===================================================  ======================
OPTIONS_WRITTEN    reconcile writes the default entry (apply_boot_write)  BOOTLOADER OPTIONS_ADDED
                                                                         OPTIONS_REMOVED
REBOOT_REQUESTED   reconcile, boot.reboot: auto, first time               REASON
REBOOT_REFUSED     reconcile again on that boot; a boot without them      REASON
TRIAL_ARMED        arm_trial (what reconcile runs with boot.trial)        BOOTLOADER OPTIONS
TRIAL_FAILED       reconcile on a boot that is not the trial's            REASON OPTIONS
TRIAL_COMMITTED    verify_trial on the trial boot                         OPTIONS
=================  ===================================================  ======================
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pmemd.boot.detect import detect
from pmemd.boot.reconcile import reconcile
from pmemd.boot.trial import arm_trial, verify_trial
from pmemd.core.events import MessageId
from pmemd.core.reboot import desired_digest
from pmemd.core.trial import mark_for
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.machine.state import read_state
from tests.boot.conftest import arm_test_trial, config_text, with_standins, write_config
from tests.conftest import run_pmemd
from tests.journal import Entry, bound_journal

Tree = Callable[..., Path]
M1, M2 = "memmap=4G!12G", "memmap=2G!10G"


def boot(root: Path, boot_id: str, *options: str) -> None:
    """A boot of the tree's machine: its id and the running kernel's options."""
    path = root / "proc/sys/kernel/random/boot_id"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(boot_id + "\n")
    (root / "proc/cmdline").write_text(" ".join(
        ["BOOT_IMAGE=/boot/vmlinuz-6.1.0-27-amd64", "ro", "quiet", *options]) + "\n")


def fields(entry: Entry) -> dict[str, str]:
    return {k: v for k, v in entry.items() if k.startswith("PMEMD_") or k == "PRIORITY"}


@pytest.fixture
def uefi(tree: Tree) -> Iterator[Path]:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G"),
                                                            reboot="auto", trial="never"))
    (root / "sys/firmware/efi/efivars").mkdir(parents=True, exist_ok=True)
    boot(root, "boot-a")
    with with_standins(root, "bootctl") as ready:
        yield ready


def test_options_written_then_one_reboot_then_the_guard_refuses(uefi: Path) -> None:
    machine, asked = Machine(uefi), []
    with bound_journal(uefi) as journal:
        reconcile(machine, Runner(), live=True, reboot=lambda: asked.append("reboot"))
        assert asked == ["reboot"]
        assert journal.ids() == [MessageId.OPTIONS_WRITTEN, MessageId.REBOOT_REQUESTED]
        written, requested = journal.entries()
        assert fields(written) == {"PRIORITY": "5", "PMEMD_BOOTLOADER": "kernel-install",
                                   "PMEMD_OPTIONS_ADDED": M1}
        assert written["MESSAGE"] == ("kernel command line of the next boot written through "
                                      f"kernel-install: added {M1}")
        assert requested["PMEMD_REASON"] == ("rebooting (boot.reboot: auto; once for this "
                                             "configuration)")
        # run again before the reboot happened: the guard does not ask twice, and says so
        reconcile(machine, Runner(), live=True, reboot=lambda: asked.append("again"))
        [refused] = journal.entries()[2:]
        assert refused["MESSAGE_ID"] == MessageId.REBOOT_REFUSED.value
        assert (refused["PRIORITY"], refused["PMEMD_REASON"]) == ("4", (
            "reboot required; pmemd already asked systemd to reboot on this boot and will "
            "not ask again"))
        # a boot without the options: degraded, and no second reboot
        boot(uefi, "boot-b")
        reconcile(machine, Runner(), live=True, reboot=lambda: asked.append("loop"))
        [degraded] = journal.entries()[3:]
        assert degraded["MESSAGE_ID"] == MessageId.REBOOT_REFUSED.value
        assert "will not reboot again for this configuration" in degraded["PMEMD_REASON"]
        # a region removed: the option taken off is written too
        write_config(uefi, config_text(reboot="never", trial="never"))
        reconcile(machine, Runner(), live=True)
        [removed] = journal.events(MessageId.OPTIONS_WRITTEN)[1:]
        assert fields(removed) == {"PRIORITY": "5", "PMEMD_BOOTLOADER": "kernel-install",
                                   "PMEMD_OPTIONS_REMOVED": M1}
    assert asked == ["reboot"]


def test_a_trial_armed_then_failed_by_a_boot_that_is_not_its_own(uefi: Path) -> None:
    with bound_journal(uefi) as journal:
        arm_test_trial(uefi, (M2, M1))
        assert journal.ids() == [MessageId.OPTIONS_WRITTEN, MessageId.TRIAL_ARMED]
        armed = journal.entries()[1]
        assert fields(armed) == {"PRIORITY": "5", "PMEMD_BOOTLOADER": "kernel-install",
                                 "PMEMD_OPTIONS": f"{M2} {M1}"}
        boot(uefi, "boot-b", M1)  # the default entry came up, not the trial
        done = run_pmemd("reconcile", "--root", str(uefi))
        assert done.returncode == 0, done.stdout + done.stderr
        [failed] = journal.events(MessageId.TRIAL_FAILED)
    assert fields(failed) == {"PRIORITY": "4", "PMEMD_OPTIONS": f"{M2} {M1}", "PMEMD_REASON": (
        "the trial boot did not come up: this boot runs the default entry (the trial boot "
        "panicked or hung and was reset, or the one-time selection was not used); what it "
        "logged: journalctl -b -1")}
    assert failed["MESSAGE"] == f"Trial boot: failed: {failed['PMEMD_REASON']}"


def test_a_verified_trial_boot_is_committed(uefi: Path) -> None:
    """The smallest trial verify_trial commits: no region (so none to find ready)."""
    write_config(uefi, config_text(trial="auto"))
    machine = Machine(uefi)
    backend = detect(machine).require()
    digest = desired_digest(())
    with bound_journal(uefi) as journal:
        arm_trial(machine, Runner(), backend, read_state(machine),
                  current=backend.read_next_boot(), desired=(), digest=digest,
                  boot_id="boot-a")
        boot(uefi, "boot-b", mark_for(digest), "panic=10")
        done = verify_trial(machine, Runner(), live=False)
        assert done.action == "committed" and done.journaled
        assert journal.ids() == [MessageId.TRIAL_ARMED, MessageId.TRIAL_COMMITTED]
        committed = journal.entries()[1]
    assert committed["MESSAGE"] == f"Trial boot: {done.message}"
    assert committed["PRIORITY"] == "5"
