"""The trial boot through real reboots: a Debian 12 guest under qemu that boots from its own
GRUB, with the .deb built from this checkout (its /etc/grub.d/42_pmemd_trial and
pmemd-trial.service), and pmemd's default ``boot.trial: auto``.

The three scenarios share one guest and run in order (seven boots in all):

1. a good config: the change is armed as a one-time GRUB entry (the default entry keeps the
   old command line, ``Trial`` is ``armed``); the admin reboots; the trial boot carries the
   options and pmemd's mark, pmemd-trial.service verifies the region (device at its
   address, DAX mount) before multi-user.target and commits: the default entry now
   carries the options, ``Trial`` is ``committed``; the next ordinary boot has them with no
   one-time selection left;
2. a trial boot that crashes: a unit of the test's own panics the kernel through sysrq when,
   and only when, the trial's mark is on the command line (standing in for a region that
   breaks the boot). With ``boot.reboot: auto`` pmemd reboots into the trial; the kernel
   panics, ``panic=`` resets the machine, GRUB boots the untouched default entry, by
   itself; ``Trial`` is ``failed`` with the reason and the crashed boot's journal;
   /etc/pmemd.yaml and the default entry are unchanged; no further reboot; ``pmemctl trial
   retry`` arms it again, ``pmemctl trial abort`` disarms it;
3. a trial boot that reaches multi-user but fails verification (the pmem driver is kept from
   loading on trial boots): pmemd-trial.service fails it and reboots back to the default
   entry by itself; the reason names the regions.

Serial console of each scenario: ``tests/vm/artifacts/<test>/console.log``; the guest's
whole console and every step's script and output: ``tests/vm/artifacts/trial-guest/``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import pytest

from tests.vm.conftest import Trip, guest_trip
from tests.vm.e2e import (
    GRUB_FILES,
    Journey,
    RegionSpec,
    assert_mounted_with_dax,
    default_entry_options,
    failed_units,
    memmap_options,
    render_config,
)
from tests.vm.image import Image

pytestmark = pytest.mark.vm

FIRST = RegionSpec("first", "256M", "1536M", "ext4", "/pmem-first")
SECOND = RegionSpec("second", "512M", "1G", "xfs", "/pmem-second")
THIRD = dataclasses.replace(SECOND, name="third", size="256M", fstype="ext4",
                            mountpoint="/pmem-third")
BOOTS = 7  # 1 + 2 (trial, ordinary) + 2 (crash, default) + 2 (trial, back); one more is a loop
TOTAL_TIMEOUT = 3000.0
GRUB_STATE = (*GRUB_FILES, "/boot/grub/grubenv")
# Stands in for a region that breaks the boot: on a trial boot only, the kernel panics early
# (vm-facts.md: about 14 s into the boot).
CRASH_UNIT = """\
[Unit]
Description=test: panic the kernel on a pmemd trial boot
DefaultDependencies=no
ConditionKernelCommandLine=pmemd.trial
After=local-fs.target
Before=sysinit.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo c > /proc/sysrq-trigger'

[Install]
WantedBy=sysinit.target
"""
# Keeps the pmem driver from loading on a trial boot only: the regions' devices never appear.
NO_PMEM_ON_TRIAL = (
    "install nd_pmem /bin/sh -c 'if grep -q pmemd.trial= /proc/cmdline; then "
    "echo test: nd_pmem kept from loading on a trial boot >&2; exit 1; fi; "
    "exec /sbin/modprobe --ignore-install nd_pmem'\n")


@pytest.fixture(scope="module")
def trip(vm_image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trip]:
    del vm_image  # the base image first: its build is timed apart
    yield from guest_trip(tmp_path_factory, "trial-guest", max_boots=BOOTS,
                          timeout=TOTAL_TIMEOUT)


def trial(journey: Journey) -> tuple[str, str]:
    """The Manager's Trial and TrialReason properties (busctl escapes quotes)."""
    state, reason = (journey.property(name).removeprefix("s ").strip('"').replace("\\'", "'")
                     for name in ("Trial", "TrialReason"))
    return state, reason


def grub_entries(grub_cfg: bytes | None) -> list[list[str]]:
    """Each linux line's command line in grub.cfg, in order."""
    return [line.split()[2:] for line in (grub_cfg or b"").decode().splitlines()
            if line.split()[:1] == ["linux"]]


def said_trial(status: str) -> str:
    """What ``pmemctl status`` says of the trial boot."""
    found = [line.split(":", 1)[1].strip() for line in status.splitlines()
             if line.strip().startswith("Trial boot:")]
    assert len(found) == 1, status
    return found[0]


def marks(cmdline: list[str]) -> list[str]:
    return [w for w in cmdline if w.startswith(("pmemd.trial=", "panic="))]


# --- 1 ------------------------------------------------------------------------------------


def test_a_good_change_is_tried_once_verified_and_committed(
        scenario: Trip, vm_timing: Callable[[str, float], None]) -> None:
    trip, journey = scenario, scenario.journey
    vm_timing(".deb build + image with it installed", trip.prepared)
    first = journey.first_boot()
    vm_timing("boot 1 to multi-user", first.seconds)
    assert trial(journey) == ("none", "")
    before = journey.files(GRUB_STATE, "grub-before")

    journey.install_config(render_config([FIRST], reboot="never"))
    planned = journey.snapshot("planned", wait=False)["pmemd_plan_json"]["trial"]
    assert (planned["state"], planned["next_change"]) == ("none", "arm"), planned
    reconciled = journey.reconcile_unit("reconcile-arms")
    assert (reconciled["result"], reconciled["status"]) == ("success", "5"), reconciled
    assert trial(journey)[0] == "armed"
    armed = journey.files(GRUB_STATE, "grub-armed")
    # The default entry keeps the old command line; one more entry carries the new options.
    entries = grub_entries(armed["/boot/grub/grub.cfg"])
    assert entries[0] == grub_entries(before["/boot/grub/grub.cfg"])[0], entries
    tried = [e for e in entries if FIRST.memmap in e]
    assert len(tried) == 1 and len(marks(tried[0])) == 2, entries
    assert b"next_entry=pmemd-trial" in (armed["/boot/grub/grubenv"] or b"")
    status = journey.run("pmemctl status\n", "status-armed").stdout
    assert said_trial(status) == "armed", status

    trial_boot = journey.guest.reboot()
    vm_timing("reboot into the trial boot, verified, to multi-user", trial_boot.seconds)
    booted = journey.snapshot("trial-boot")
    assert FIRST.memmap in booted["cmdline"] and len(marks(booted["cmdline"])) == 2
    assert_mounted_with_dax(booted, FIRST)
    assert trial(journey)[0] == "committed", trial(journey)
    verified = journey.journal("journal-verify", "-b", "-u", "pmemd-trial.service")
    assert "verified" in verified, verified
    reconcile_log = journey.journal("journal-running", "-b", "-u", "pmemd-reconcile.service")
    assert "this boot is the trial boot" in reconcile_log, reconcile_log  # Trial: running
    committed = journey.files(GRUB_STATE, "grub-committed")
    default = default_entry_options((committed["/boot/grub/grub.cfg"] or b"").decode())
    assert memmap_options(default) == [FIRST.memmap] and marks(default) == [], default
    assert len(grub_entries(committed["/boot/grub/grub.cfg"])) == len(
        grub_entries(before["/boot/grub/grub.cfg"]))  # the trial entry is gone
    assert b"next_entry=pmemd-trial" not in (committed["/boot/grub/grubenv"] or b"")
    assert booted["pmemctl_status_json"]["State"] == "converged", booted["pmemctl_status"]
    assert booted["system_state"] == "running", failed_units(booted)

    ordinary = journey.guest.reboot()
    vm_timing("ordinary reboot to multi-user", ordinary.seconds)
    after = journey.snapshot("ordinary-boot")
    assert memmap_options(after["cmdline"]) == [FIRST.memmap] and marks(after["cmdline"]) == []
    assert_mounted_with_dax(after, FIRST)
    assert after["pmemctl_status_json"]["State"] == "converged", after["pmemctl_status"]
    skipped = journey.check("systemctl show -P ConditionResult pmemd-trial.service\n",
                            "trial-unit").stdout.strip()
    assert skipped == "no"  # not a trial boot: the verification did not run
    assert trial(journey)[0] == "committed"
    assert journey.guest.boots == 3
    trip.seen.update(default=default)
    trip.done.add(1)


# --- 2 ------------------------------------------------------------------------------------


def test_a_trial_boot_that_panics_comes_back_on_the_old_command_line_by_itself(
        scenario: Trip, vm_timing: Callable[[str, float], None]) -> None:
    trip, journey = scenario, scenario.journey
    trip.require(1)
    unit = journey.guest.put("crash.service", CRASH_UNIT)
    journey.check(f"install -m 0644 {unit} /etc/systemd/system/test-crash-on-trial.service\n"
                  "systemctl enable test-crash-on-trial.service\n", "crash-unit")
    config = render_config([FIRST, SECOND], reboot="auto")
    journey.install_config(config)
    before = journey.files((*GRUB_STATE, "/etc/pmemd.yaml"), "before-crash")

    started = time.monotonic()
    back = journey.reconcile_reboots("reconcile-arms-and-reboots")
    vm_timing("reconcile, trial boot, panic, reset, default entry to multi-user",
              time.monotonic() - started)
    assert journey.guest.boots == 5  # the trial boot that panicked, and this one
    booted = journey.snapshot("back")
    assert booted["boot_id"] == back.boot_id
    assert memmap_options(booted["cmdline"]) == [FIRST.memmap] and marks(booted["cmdline"]) == []
    assert "Kernel panic - not syncing: sysrq triggered crash" in \
        journey.guest.console_log.read_text(errors="replace")
    state, reason = trial(journey)
    assert state == "failed", (state, reason)
    assert "did not come up" in reason and "journalctl -b" in reason, reason
    after = journey.files((*GRUB_STATE, "/etc/pmemd.yaml"), "after-crash")
    assert after["/etc/pmemd.yaml"] == before["/etc/pmemd.yaml"]
    assert grub_entries(after["/boot/grub/grub.cfg"])[0] == trip.seen["default"]
    assert b"next_entry" not in (after["/boot/grub/grubenv"] or b"")
    assert_mounted_with_dax(booted, FIRST)
    status = booted["pmemctl_status"]["stdout"]
    assert said_trial(status).startswith("failed: the trial boot did not come up"), status
    plan = booted["pmemd_plan_json"]["trial"]
    assert plan["state"] == "failed" and plan["next_change"] == "hold", plan
    # the boot's reconcile held the failed options: no second reboot
    assert journey.guest.boots == 5

    # The admin asks again, without the automatic reboot this time (the same options: the
    # failed trial stays failed until retried).
    journey.install_config(render_config([FIRST, SECOND], reboot="never"))
    assert trial(journey)[0] == "failed"
    retried = journey.run("pmemctl trial retry\n", "retry", timeout=600)
    assert retried.status == 0, retried
    assert trial(journey)[0] == "armed"
    armed = journey.files(GRUB_STATE, "grub-retried")
    assert b"next_entry=pmemd-trial" in (armed["/boot/grub/grubenv"] or b"")
    aborted = journey.run("pmemctl trial abort\n", "abort", timeout=600)
    assert aborted.status == 0 and "Trial boot: failed" in aborted.stdout, aborted
    disarmed = journey.files(GRUB_STATE, "grub-aborted")
    assert b"next_entry" not in (disarmed["/boot/grub/grubenv"] or b"")
    assert grub_entries(disarmed["/boot/grub/grub.cfg"]) == grub_entries(
        after["/boot/grub/grub.cfg"])
    journey.check("systemctl disable test-crash-on-trial.service\n", "crash-unit-off")
    assert journey.guest.boots == 5
    trip.done.add(2)


# --- 3 ------------------------------------------------------------------------------------


def test_a_trial_boot_that_fails_verification_reboots_back_by_itself(
        scenario: Trip, vm_timing: Callable[[str, float], None]) -> None:
    trip, journey = scenario, scenario.journey
    trip.require(2)
    rule = journey.guest.put("no-pmem-on-trial.conf", NO_PMEM_ON_TRIAL)
    journey.check(
        f"install -m 0644 {rule} /etc/modprobe.d/test-no-pmem-on-trial.conf\n"
        "if lsinitramfs /boot/initrd.img-$(uname -r) | grep -q nd_pmem.ko; then\n"
        "    update-initramfs -u\n"
        "fi\n", "no-pmem-on-trial", timeout=600)
    journey.install_config(render_config([FIRST, THIRD], reboot="auto"))

    started = time.monotonic()
    back = journey.reconcile_reboots("reconcile-arms-and-reboots")
    vm_timing("reconcile, trial boot failing verification, reboot back to multi-user",
              time.monotonic() - started)
    assert journey.guest.boots == 7
    booted = journey.snapshot("back")
    assert booted["boot_id"] == back.boot_id
    assert memmap_options(booted["cmdline"]) == [FIRST.memmap] and marks(booted["cmdline"]) == []
    assert_mounted_with_dax(booted, FIRST)  # the old boot's region, as before the trial
    state, reason = trial(journey)
    assert state == "failed", (state, reason)
    assert "came up but" in reason and "region 'third'" in reason, reason
    verified = journey.journal("journal-verify", "-b", "-1", "-u", "pmemd-trial.service")
    assert "rebooting into the default entry" in verified, verified
    grub = journey.files(GRUB_STATE, "grub-back")
    assert grub_entries(grub["/boot/grub/grub.cfg"])[0] == trip.seen["default"]
    assert b"next_entry" not in (grub["/boot/grub/grubenv"] or b"")
    assert journey.guest.boots == 7
    assert journey.guest.poweroff() == 0
    trip.done.add(3)
