"""pmemd's whole job on a real system, from ``/etc/pmemd.yaml`` to verified DAX mounts through
real reboots: a Debian 12 guest under qemu that boots from its own GRUB, with the .deb built
from this checkout.

Every config here says ``boot.trial: never``: pmemd writes the default entry directly, as
before trial boots existed (``tests/vm/test_trial.py`` proves the trial boot). The four
scenarios share one guest and run in order, each starting from the machine the
one before left (six boots in all; a scenario whose predecessor failed fails at once and
says so):

1. fresh install, two regions (xfs 512 MiB with ``on-boot: keep`` — below the size where
   mkfs.xfs 6.1 needs an explicit AG count — and ext4 256 MiB): pmemd-reconcile.service
   writes GRUB through the real update-grub and reports a reboot required on D-Bus; the
   guest's RAM is dirtied (a process fills 1300 MiB with 0xff), then with ``reboot: auto``
   it reboots; after that boot both options are on /proc/cmdline, both /dev/pmem devices
   are there, both filesystems mounted with DAX — the ``keep`` region's made over the
   leftover RAM its range held, because pmemd's boot history says that range was RAM on
   the previous boot (the journal and ``pmemd plan`` say so) — files written and read
   back, converged;
2. one region removed: its option, device, mount and units are gone and its RAM is the
   system's again; the ``keep`` region's filesystem (pmemd's own, recorded on the previous
   boot) and file survived the warm reboot;
3. an invalid config: a located error from ``pmemctl validate`` and in the journal, GRUB's
   files byte for byte unchanged, and the machine boots normally with the valid region;
4. a boot without pmemd's options (a one-time GRUB entry of the admin's, right after pmemd's
   automatic reboot): the devices never appear, the boot still reaches multi-user (no
   emergency mode), pmemd reports degraded with the cause and each region's reason, records
   that boot's ranges as RAM, and does not reboot again; the admin's next reboot takes the
   default entry and converges — with the ``keep`` region's filesystem made anew (its file
   gone), the reason (its memory was RAM on the previous boot) in the journal and in
   ``pmemd plan``.

Serial console of each scenario: ``tests/vm/artifacts/<test>/console.log``; the guest's
whole console and every step's script and output: ``tests/vm/artifacts/e2e-guest/``.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import shlex
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pmemd.core.events import MessageId
from pmemd.core.pmd import PmdResult, parse_check
from pmemd.core.units import link_name, unit_name
from pmemd.machine.root import PMEM_LINK_DIR
from tests.cockpit.browser import SCREENSHOTS, open_in_shell, start_browser, wait_for_regions
from tests.vm.conftest import Trip, guest_trip
from tests.vm.e2e import (
    GRUB_FILES,
    Journey,
    RegionSpec,
    default_entry_options,
    device_at,
    failed_units,
    memmap_options,
    mount_at,
    render_config,
    size_bytes,
)
from tests.vm.image import Image
from tests.vm.steps import boot_once_without_options
from tests.vm.webconsole import log_in, open_cockpit, region_cells, shell_screenshot

pytestmark = pytest.mark.vm

DATA = RegionSpec("data", "512M", "1G", "xfs", "/pmem-data", on_boot="keep",
                  options=("noatime",))
SCRATCH = RegionSpec("scratch", "256M", "1536M", "ext4", "/pmem-scratch")
BOOTS = 6  # the journey's boots; one more is a reboot nobody asked for
TOTAL_TIMEOUT = 3600.0
MiB = 1 << 20
# What a workload leaves in RAM: the memory of the region's first boot as pmem is not zero.
DIRTY_RAM = "python3 -c \"b = b'\\xff' * (1300 << 20)\"\n"


@pytest.fixture(scope="module")
def trip(vm_image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trip]:
    """The guest, booted once from an image with pmemd's .deb from this checkout."""
    del vm_image  # the base image first: its build is timed apart
    yield from guest_trip(tmp_path_factory, "e2e-guest", max_boots=BOOTS,
                          timeout=TOTAL_TIMEOUT, cockpit=True)


def fsck_unit(region: RegionSpec) -> str:
    """systemd-fsck@ for the region's stable device name."""
    return unit_name(link_name(PMEM_LINK_DIR, size_bytes(region.offset)), ".service",
                     "systemd-fsck@")


def regions_by_name(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["Name"]: r for r in snapshot["pmemctl_regions_json"]}


def plan_devices(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["region"]: d for d in snapshot["pmemd_plan_json"]["devices"]}


def assert_dax_mount(snapshot: dict[str, Any], region: RegionSpec) -> str:
    """The region's device (found by its physical address in sysfs) is mounted at its
    mountpoint with its filesystem and DAX on; returns the device's name."""
    found = device_at(snapshot, size_bytes(region.offset))
    assert found is not None, f"no /dev/pmem device at {region.offset}: {snapshot['devices']}"
    name, device = found
    assert device["node"] and device["size"] == size_bytes(region.size), device
    assert device["dax"] == "1", device  # /sys/block/pmemN/queue/dax
    assert snapshot["links"].get(f"0x{size_bytes(region.offset):x}") == name, snapshot["links"]
    mount = mount_at(snapshot, region.mountpoint)
    assert mount is not None, f"{region.mountpoint} is not mounted: {snapshot['mounts']}"
    assert mount["source"] == f"/dev/{name}" and mount["fstype"] == region.fstype, mount
    assert "dax=always" in mount["options"], mount
    assert set(region.options) <= set(mount["options"]), mount
    return name


def journal_id(boot_id: str) -> str:
    """A boot id as journalctl -b takes it (and pmemd names it)."""
    return boot_id.replace("-", "")


def journal_events(journey: Journey, message_id: MessageId, name: str, *args: str
                   ) -> list[dict[str, Any]]:
    """pmemd's structured journal entries of one kind, with all their fields."""
    step = journey.check(shlex.join(["journalctl", "--no-pager", "-o", "json", *args,
                                     f"MESSAGE_ID={message_id.value}"]) + "\n", name)
    return [json.loads(line) for line in step.stdout.splitlines() if line.strip()]


def assert_journal_events(journey: Journey, first_boot: str, devices: dict[str, str]) -> None:
    """The structured events of scenario 1, found by MESSAGE_ID with their fields: the
    options written and the reboot asked for on the first boot, the filesystems made on
    this one; and journalctl -x explains them from the package's catalog."""
    written = journal_events(journey, MessageId.OPTIONS_WRITTEN, "events-written", "-b", "-1")
    assert [(e["_BOOT_ID"], e["PMEMD_BOOTLOADER"], e["PMEMD_OPTIONS_ADDED"], e["PRIORITY"],
             e["SYSLOG_IDENTIFIER"]) for e in written] == [
        (first_boot, "update-grub", f"{DATA.memmap} {SCRATCH.memmap}", "5", "pmemd")], written
    assert "PMEMD_OPTIONS_REMOVED" not in written[0], written
    asked = journal_events(journey, MessageId.REBOOT_REQUESTED, "events-reboot", "-b", "-1")
    assert [e["PMEMD_REASON"] for e in asked] == [
        "rebooting (boot.reboot: auto; once for this configuration)"], asked
    made = journal_events(journey, MessageId.FILESYSTEM_MADE, "events-made", "-b")
    assert sorted((e["PMEMD_REGION"], e["PMEMD_DEVICE"], e["PMEMD_FSTYPE"]) for e in made) == [
        ("data", f"/dev/{devices['data']}", "xfs"),
        ("scratch", f"/dev/{devices['scratch']}", "ext4")], made
    for event in made:
        assert event["_SYSTEMD_UNIT"].startswith("pmemd-makefs@"), event
        assert event["PMEMD_UUID"] and event["PMEMD_REASON"] in event["MESSAGE"], event
    explained = journey.check(f"journalctl --no-pager -b -x "
                              f"MESSAGE_ID={MessageId.FILESYSTEM_MADE.value}\n",
                              "events-made-explained").stdout
    assert "Subject: pmemd made a filesystem on a persistent memory region" in explained, \
        explained
    assert f"/dev/{devices['data']} for region data: " in explained, explained
    catalog = journey.check(f"journalctl --dump-catalog {MessageId.OPTIONS_WRITTEN.value}\n",
                            "catalog-written").stdout
    assert "Subject: pmemd wrote the kernel command line of the next boot" in catalog, catalog


def plan_filesystems(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What pmemd plan says make-filesystem did on this boot, per region."""
    return {f["region"]: f for f in snapshot["pmemd_plan_json"]["filesystems"]}


def assert_pmd_faults(journey: Journey, regions: list[RegionSpec]) -> None:
    """Every pmemd-made filesystem's DAX check (pmemd-dax@, after its mount) mapped a file
    and saw the kernel serve it with 2 MiB faults (fs_dax:dax_pmd_fault_done NOPAGE), none
    falling back to 4 KiB ones; it says so in the journal and records it for the status."""
    said = journey.journal("journal-dax", "-b", "-u", "pmemd-dax@*")
    for region in regions:
        shown = journey.check(f"cat /run/pmemd/pmd/{region.name}\n", f"pmd-{region.name}")
        check = parse_check(shown.stdout)
        assert check is not None, shown
        assert (check.result, check.pmd_faults, check.pte_faults) == (PmdResult.PMD, 2, 0), check
        assert (f"{region.mountpoint}: mappings are served by 2 MiB faults "
                "(2 fs_dax:dax_pmd_fault_done NOPAGE)") in said, said
    assert "fell back" not in said and "not checked" not in said, said


def assert_hand_made_xfs_is_degraded(journey: Journey, device: str) -> None:
    """An xfs made by hand without pmemd's 2 MiB stripe unit (mkfs.xfs's defaults), mounted
    with DAX where the data region's was: a DAX mount, but its mappings fall back to 4 KiB
    faults. ``pmemd verify-dax`` fails with the reason, and so does the region's pmemd-dax@
    unit (systemd starts it again when the mount appears, even by hand); the region is
    degraded with the reason on D-Bus (pmemctl regions, status) and in the journal."""
    region = DATA
    unit = unit_name(region.mountpoint, ".service", "pmemd-dax@")
    made = journey.run(f"umount {region.mountpoint}\nmkfs.xfs -f -q /dev/{device}\n"
                       f"mount -o dax=always,noatime /dev/{device} {region.mountpoint}\n"
                       f"pmemd verify-dax {region.name}\n", "hand-made-xfs")
    reason = (f"{region.mountpoint}: a 2 MiB-aligned mapping of a file fell back to 4 KiB "
              "faults (fs_dax:dax_pmd_fault_done FALLBACK): the filesystem's allocation is not "
              "2 MiB aligned; make it with mkfs.xfs -d su=2m,sw=1 (as pmemd does)")
    assert made.status == 1 and reason in made.stderr, made
    # The unit's own check, done: failed, with the same reason; no probe file left behind.
    waited = journey.check(f"for i in $(seq 150); do [ \"$(systemctl show -P ActiveState "
                           f"'{unit}')\" = failed ] && break; sleep 0.2; done\n"
                           f"systemctl show -P ActiveState -P Result '{unit}'\n"
                           f"ls -A {region.mountpoint}\n", "hand-made-unit").stdout
    assert sorted(waited.split()) == ["exit-code", "failed"], waited  # ls: nothing
    assert reason in journey.journal("journal-dax-hand-made", "-b", "-u", unit)
    regions = journey.check("pmemctl regions --json\n", "regions-no-pmd").stdout
    listed = {r["Name"]: r for r in json.loads(regions)}
    assert listed[region.name]["State"] == "no-pmd", listed[region.name]
    assert listed[region.name]["Dax"] is True, listed[region.name]  # DAX, only slower
    assert reason in listed[region.name]["StateReason"], listed[region.name]
    assert listed[SCRATCH.name]["State"] == "ready", listed[SCRATCH.name]
    status = json.loads(journey.check("pmemctl status --json\n", "status-no-pmd").stdout)
    assert status["State"] == "degraded", status
    events = journal_events(journey, MessageId.PMD_FALLBACK, "events-pmd-fallback", "-b")
    assert events and {(e["PMEMD_REGION"], e["PMEMD_MOUNTPOINT"], e["PMEMD_DEVICE"],
                        e["PMEMD_REASON"]) for e in events} == {
        (region.name, region.mountpoint, f"/dev/{device}", reason)}, events


def assert_roundtrip(trip: Trip, region: RegionSpec, token: str) -> None:
    done = trip.journey.roundtrip(region.mountpoint, token, f"roundtrip-{region.name}")
    assert done["read"] == token, done
    assert done["dax"], f"the file on {region.mountpoint} is not DAX (statx): {done}"


# --- 1 ------------------------------------------------------------------------------------


def test_fresh_install_two_regions_through_grub_and_one_automatic_reboot(
        scenario: Trip, vm_timing: Callable[[str, float], None]) -> None:
    trip, journey = scenario, scenario.journey
    vm_timing(".deb build + image with it installed", trip.prepared)
    first = journey.first_boot()
    vm_timing("boot 1 (fresh install) to multi-user", first.seconds)

    # As installed: the package's /etc/pmemd.yaml declares no region, nothing is changed.
    installed = journey.snapshot("installed")
    assert installed["pmemctl_status_json"]["State"] == "converged", installed["pmemctl_status"]
    assert memmap_options(installed["cmdline"]) == [] and installed["devices"] == {}
    grub_before = journey.files(GRUB_FILES, "grub-before")
    assert grub_before["/etc/default/grub.d/pmemd.cfg"] is None

    journey.install_config(render_config([DATA, SCRATCH], reboot="never", trial="never"))
    assert journey.property("State") == 's "changes-pending"'
    started = time.monotonic()
    reconciled = journey.reconcile_unit("reconcile")
    vm_timing("pmemd-reconcile.service with update-grub", time.monotonic() - started)
    assert (reconciled["result"], reconciled["status"]) == ("success", "5"), reconciled
    assert "Ran: /usr/sbin/update-grub" in reconciled["journal"], reconciled["journal"]
    assert "reboot required" in reconciled["journal"], reconciled["journal"]

    grub = journey.files(GRUB_FILES, "grub-after")
    default = default_entry_options((grub["/boot/grub/grub.cfg"] or b"").decode())
    assert memmap_options(default) == [DATA.memmap, SCRATCH.memmap], default
    assert grub["/etc/default/grub"] == grub_before["/etc/default/grub"]  # the admin's file
    assert DATA.memmap.encode() in (grub["/etc/default/grub.d/pmemd.cfg"] or b"")
    assert journey.property("RebootRequired") == "b true"
    assert journey.property("State") == 's "reboot-required"'
    assert journey.check("cat /run/reboot-required\n", "reboot-marker").stdout.strip()
    assert journey.guest.boots == 1

    # boot.reboot: auto — the same unit, as at boot, now reboots the machine itself. Before
    # that, a workload has used the RAM: the keep region's memory will not be zero.
    journey.install_config(render_config([DATA, SCRATCH], reboot="auto", trial="never"))
    journey.check(DIRTY_RAM, "dirty-ram")
    started = time.monotonic()
    second = journey.reconcile_reboots("reconcile-reboots")
    vm_timing("reconcile's reboot to multi-user", time.monotonic() - started)
    assert journey.guest.boots == 2
    previous = journey.journal("journal-reboot", "-b", "-1", "-u", "pmemd-reconcile.service")
    assert "rebooting (boot.reboot: auto" in previous, previous

    booted = journey.snapshot("booted")
    assert booted["boot_id"] == second.boot_id
    assert memmap_options(booted["cmdline"]) == [DATA.memmap, SCRATCH.memmap], booted["cmdline"]
    assert len(booted["devices"]) == 2, booted["devices"]
    devices = {r.name: assert_dax_mount(booted, r) for r in (DATA, SCRATCH)}
    assert_pmd_faults(journey, [DATA, SCRATCH])
    for region in (DATA, SCRATCH):
        assert_roundtrip(trip, region, secrets.token_hex(16))
    status = booted["pmemctl_status_json"]
    assert (status["State"], status["RebootRequired"]) == ("converged", False), \
        booted["pmemctl_status"]["stdout"]
    assert "State: converged" in booted["pmemctl_status"]["stdout"]
    assert "Regions: 2 configured, 2 ready" in booted["pmemctl_status"]["stdout"]
    assert booted["reboot_required"].strip() == "b false"
    assert booted["pmemd_plan"]["status"] == 0, booted["pmemd_plan"]
    assert {name: d["state"] for name, d in plan_devices(booted).items()} == \
        {"data": "ready", "scratch": "ready"}
    assert booted["run_markers"]["/run/reboot-required"] is None
    assert booted["system_state"] == "running", failed_units(booted)
    # The keep region's first boot: its memory held leftover RAM, which keep used to refuse
    # as unknown data; the boot history says the range was RAM on the previous boot.
    makefs = journey.journal("journal-makefs", "-b", "-u", "pmemd-makefs@*")
    assert (f"region data: made the filesystem on {devices['data']}" in makefs), makefs
    assert ("on-boot: keep, but its range was ordinary RAM, not pmem, on the previous boot "
            f"(journalctl -b {journal_id(first.boot_id)})") in makefs, makefs
    assert "is not zero" in makefs, makefs  # the memory was dirty: leftover RAM
    assert_journal_events(journey, journal_id(first.boot_id), devices)
    # keep: systemd's own fsck (as for an fstab line with a pass number) checked the data
    # region's filesystem after pmemd-makefs accepted the device; recreate has none.
    fsck = {r.name: fsck_unit(r) for r in (DATA, SCRATCH)}
    shown = journey.check(f"systemctl show -p ActiveState -p Result -p After "
                          f"'{fsck['data']}' '{fsck['scratch']}'\n", "fsck").stdout
    data_fsck, scratch_fsck = shown.split("\n\n")
    assert "ActiveState=active" in data_fsck and "Result=success" in data_fsck, shown
    assert "pmemd-makefs@" in data_fsck, shown  # the generator's drop-in
    assert "ActiveState=inactive" in scratch_fsck, shown
    made = plan_filesystems(booted)
    assert (made["data"]["action"], made["data"]["basis"]) == ("made", "was-ram"), made
    assert made["scratch"]["basis"] == "recreate", made
    assert "Filesystems on this boot" in booted["pmemd_plan"]["stdout"]
    assert not [w for w in status["Warnings"] if w[0].startswith("filesystem-")], status
    trip.seen.update(booted=booted, devices=devices)
    trip.done.add(1)


def test_the_guests_cockpit_shows_its_regions_on_pmemds_page(
        scenario: Trip, vm_artifacts: Path, tmp_path: Path,
        vm_timing: Callable[[str, float], None]) -> None:
    """After scenario 1's reboot: the guest's own Cockpit (cockpit.socket, its login page,
    PAM) with pmemd-cockpit installed from this checkout shows the page in its menu, and
    the page shows the guest's real regions: their devices, mounts, DAX and state."""
    trip = scenario
    trip.require(1)
    assert trip.web_port is not None
    started = time.monotonic()
    console = open_cockpit(trip.journey, trip.web_port)
    assert len(console.versions) == 2, console.versions  # cockpit-ws and pmemd-cockpit
    browser = start_browser(tmp_path / "chromium")
    try:
        log_in(browser, console)
        open_in_shell(browser, console.base)
        wait_for_regions(browser, [DATA.name, SCRATCH.name])
        devices = trip.seen["devices"]
        for region in (DATA, SCRATCH):
            cells = region_cells(browser, region.name)
            assert cells[3].splitlines() == [f"/dev/{devices[region.name]}", "raw"], cells
            assert (cells[4], cells[5], cells[6]) == (region.fstype, region.mountpoint, "on")
            assert cells[7].splitlines()[0] == "ready", cells
        assert browser.js("return document.getElementById('banner').dataset.state") == \
            "converged"
        assert browser.errors() == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shell_screenshot(browser, vm_artifacts / "cockpit-guest.png")
        shutil.copy(vm_artifacts / "cockpit-guest.png", SCREENSHOTS / "guest.png")
    finally:
        browser.quit()
    vm_timing("Cockpit: start, log in, the page", time.monotonic() - started)


# --- 2 ------------------------------------------------------------------------------------


def test_removing_a_region_takes_its_option_device_and_mount_away_and_keeps_the_other(
        scenario: Trip, vm_timing: Callable[[str, float], None]) -> None:
    trip, journey = scenario, scenario.journey
    trip.require(1)
    before: dict[str, Any] = trip.seen["booted"]
    kept = DATA
    data_device = trip.seen["devices"]["data"]
    uuid = journey.check(f"blkid -p -o value -s UUID /dev/{data_device}\n", "uuid").stdout
    token = secrets.token_hex(16)
    assert_roundtrip(trip, kept, token)

    journey.install_config(render_config([kept], reboot="auto", trial="never"))
    started = time.monotonic()
    third = journey.reconcile_reboots("reconcile-removes")
    vm_timing("reconcile's reboot to multi-user", time.monotonic() - started)
    assert journey.guest.boots == 3

    after = journey.snapshot("removed")
    assert after["boot_id"] == third.boot_id
    assert memmap_options(after["cmdline"]) == [DATA.memmap], after["cmdline"]
    grub = journey.files(GRUB_FILES, "grub-removed")
    assert memmap_options(default_entry_options((grub["/boot/grub/grub.cfg"] or b"").decode())
                          ) == [DATA.memmap]
    # The removed region: no device at its address, no mount, no units; its RAM is back.
    assert device_at(after, size_bytes(SCRATCH.offset)) is None, after["devices"]
    assert list(after["links"]) == [f"0x{size_bytes(DATA.offset):x}"], after["links"]
    assert mount_at(after, SCRATCH.mountpoint) is None, after["mounts"]
    assert "0x60000000" not in after["pmemd_units"] and "scratch" not in after["pmemd_units"]
    returned = (after["mem_total_kib"] - before["mem_total_kib"]) * 1024
    assert abs(returned - size_bytes(SCRATCH.size)) < 8 * MiB, (before["mem_total_kib"],
                                                              after["mem_total_kib"])
    # The other region: the same option, device and filesystem, and its file survived the
    # warm reboot (on-boot: keep; emulated pmem is RAM, which a reset does not clear).
    assert assert_dax_mount(after, kept) == data_device
    assert journey.check(f"blkid -p -o value -s UUID /dev/{data_device}\n",
                         "uuid-after").stdout == uuid
    assert journey.read_token(kept.mountpoint, "token-after") == token
    makefs = journey.journal("journal-makefs", "-b", "-u", "pmemd-makefs@*")
    assert f"keeps the existing xfs filesystem (UUID {uuid.strip()}) pmemd made on the " \
           "previous boot" in makefs, makefs
    assert plan_filesystems(after)["data"]["basis"] == "kept-own"
    assert after["pmemctl_status_json"]["State"] == "converged", after["pmemctl_status"]
    assert "Regions: 1 configured, 1 ready" in after["pmemctl_status"]["stdout"]
    assert after["system_state"] == "running", failed_units(after)
    trip.seen.update(removed=after, kept=kept, grub=grub)
    trip.done.add(2)


# --- 3 ------------------------------------------------------------------------------------


def test_an_invalid_config_is_reported_changes_nothing_and_the_machine_boots(
        scenario: Trip, vm_timing: Callable[[str, float], None]) -> None:
    trip, journey = scenario, scenario.journey
    trip.require(2)
    kept: RegionSpec = trip.seen["kept"]
    # A new region with a leading zero: the kernel would read 0256M as octal; pmemd refuses.
    typo = dataclasses.replace(SCRATCH, size="0256M")
    text = render_config([kept, typo], reboot="auto", trial="never")
    line = text.splitlines().index("    size: 0256M") + 1
    where = f"/etc/pmemd.yaml:{line}:11: regions[1].size:"
    # GRUB's inputs, its generated config and its environment block (grub-reboot's state)
    grub_state = (*GRUB_FILES, "/boot/grub/grubenv")
    grub_before = journey.files(grub_state, "grub-before")

    journey.install_config(text)
    validate = journey.run("pmemctl validate /etc/pmemd.yaml\n", "validate")
    assert validate.status == 3, validate
    assert where in validate.stderr and "octal" in validate.stderr, validate.stderr
    reconciled = journey.reconcile_unit("reconcile-invalid")
    assert (reconciled["result"], reconciled["status"]) == ("exit-code", "3"), reconciled
    assert where in reconciled["journal"], reconciled["journal"]
    assert journey.property("State") == 's "invalid-config"'
    status = journey.run("pmemctl status\n", "status")
    assert f"Problem: {where}" in status.stdout, status.stdout
    assert journey.files(grub_state, "grub-unchanged") == grub_before

    before = trip.seen["removed"]
    fourth = journey.guest.reboot()
    vm_timing("reboot by hand to multi-user", fourth.seconds)
    booted = journey.snapshot("booted-invalid")
    assert booted["cmdline"] == before["cmdline"]
    assert journey.files(grub_state, "grub-after-boot") == grub_before
    # It booted normally: only pmemd-reconcile.service failed (the config is invalid).
    assert booted["system_state"] == "degraded" and failed_units(booted) == [
        "pmemd-reconcile.service"], (booted["system_state"], booted["failed_units"])
    generator = journey.journal("journal-generator", "-b", "-t", "pmemd-generator")
    assert f"{where} '0256M' has a leading zero" in generator, generator
    assert "ignoring regions[1]" in generator, generator
    at_boot = journey.journal("journal-reconcile", "-b", "-u", "pmemd-reconcile.service")
    assert where in at_boot, at_boot
    # The generator left out only the bad region: the valid one is mounted with DAX.
    assert_dax_mount(booted, kept)
    assert mount_at(booted, typo.mountpoint) is None
    assert booted["pmemctl_status_json"]["State"] == "invalid-config"
    assert journey.guest.boots == 4
    trip.done.add(3)


# --- 4 ------------------------------------------------------------------------------------


def test_a_boot_without_the_options_reaches_multi_user_and_is_reported_degraded(
        scenario: Trip, vm_timing: Callable[[str, float], None]) -> None:
    trip, journey = scenario, scenario.journey
    trip.require(3)
    regions = [DATA, SCRATCH]  # a valid config again, both regions (data: keep)
    device = assert_dax_mount(journey.snapshot("before-plain-boot"), DATA)
    kept_uuid = journey.check(f"blkid -p -o value -s UUID /dev/{device}\n", "uuid").stdout
    token = secrets.token_hex(16)
    assert_roundtrip(trip, DATA, token)
    # The admin has made an entry of their own the next boot's, once (as picking it at the
    # GRUB menu would); pmemd's automatic reboot then boots it, without pmemd's options.
    journey.check(boot_once_without_options(), "one-time-entry", timeout=300)
    journey.install_config(render_config(regions, reboot="auto", trial="never"))
    started = time.monotonic()
    fifth = journey.reconcile_reboots("reconcile-reboots-once")
    vm_timing("reconcile's reboot into the one-time entry", time.monotonic() - started)

    # The boot reached multi-user.target (the step runner starts after it) ...
    assert journey.guest.boots == 5
    degraded = journey.snapshot("degraded")  # ... and systemd finished starting up
    assert degraded["boot_id"] == fifth.boot_id
    assert memmap_options(degraded["cmdline"]) == [] and degraded["devices"] == {}
    assert degraded["system_state"] == "degraded", degraded["system_state"]
    assert failed_units(degraded) == ["pmemd-reconcile.service"], degraded["failed_units"]
    rescue = journey.run("systemctl is-active emergency.target rescue.target\n", "rescue")
    assert rescue.stdout.split() == ["inactive", "inactive"], rescue
    assert degraded["mounts"] == []
    waited = [line for line in journey.journal("journal-devices", "-b").splitlines()
              if "by-pmem-address" in line or "DAX filesystem of pmem region" in line]
    for region in regions:
        address = f"/dev/disk/by-pmem-address/0x{size_bytes(region.offset):x}"
        assert any(line.startswith("Timed out waiting for device") and address in line
                   for line in waited), waited

    # pmemd: degraded, with the likely cause; each region missing, with its reason.
    status = degraded["pmemctl_status_json"]
    assert status["State"] == "degraded", degraded["pmemctl_status"]
    assert "State: degraded" in degraded["pmemctl_status"]["stdout"]
    assert "Regions: 2 configured, 0 ready" in degraded["pmemctl_status"]["stdout"]
    cause = degraded["run_markers"]["/run/pmemd/degraded"] or ""
    assert "grub-reboot" in cause and "will not reboot again" in cause, cause
    assert f"Warning: {cause}" in degraded["pmemctl_status"]["stdout"]
    # pmemd plan judges against the next boot, which carries the options: reboot required.
    assert degraded["pmemd_plan"]["status"] == 5, degraded["pmemd_plan"]
    listed = regions_by_name(degraded)
    planned = plan_devices(degraded)
    for region in regions:
        reason = f"this boot's command line lacks {region.memmap}"
        assert listed[region.name]["State"] == "missing", listed[region.name]
        assert reason in listed[region.name]["StateReason"], listed[region.name]
        assert planned[region.name]["state"] == "missing" and reason in \
            planned[region.name]["reason"], planned[region.name]
        assert reason in degraded["pmemd_plan"]["stdout"]
    assert journey.guest.boots == 5  # no second automatic reboot
    # This boot is in pmemd's boot history: no pmem range (its reconcile recorded it first).
    history = journey.check("cat /var/lib/pmemd/boot-history\n", "boot-history").stdout
    assert f"boot {fifth.boot_id} -\n" in history, history

    # The admin reboots: the default entry carries the options again.
    sixth = journey.guest.reboot()
    vm_timing("reboot by hand into the default entry", sixth.seconds)
    healed = journey.snapshot("healed")
    assert memmap_options(healed["cmdline"]) == [DATA.memmap, SCRATCH.memmap]
    for region in regions:
        assert_dax_mount(healed, region)
    assert healed["pmemctl_status_json"]["State"] == "converged", healed["pmemctl_status"]
    assert healed["system_state"] == "running", failed_units(healed)
    # The keep region's memory was RAM on the previous boot: whatever it holds now (even a
    # surviving xfs signature) is not the user's. It was made anew, and pmemd says why.
    device = assert_dax_mount(healed, DATA)
    uuid = journey.check(f"blkid -p -o value -s UUID /dev/{device}\n", "uuid-healed").stdout
    assert uuid != kept_uuid
    assert journey.read_token(DATA.mountpoint, "token-healed") is None
    makefs = journey.journal("journal-makefs-healed", "-b", "-u", "pmemd-makefs@*")
    reason = ("on-boot: keep, but its range was ordinary RAM, not pmem, on the previous boot "
              f"(journalctl -b {journal_id(fifth.boot_id)}), so what the memory holds cannot "
              "be user data")
    assert reason in makefs, makefs
    made = plan_filesystems(healed)["data"]
    assert made["action"] == "made" and reason in made["reason"], made
    assert reason in healed["pmemd_plan"]["stdout"]
    if made["basis"] == "untrusted":  # an xfs signature survived the boot as RAM: warnings
        assert "cannot be trusted" in makefs, makefs
        loud = journey.journal("journal-makefs-warning", "-b", "-p", "warning",
                               "-u", "pmemd-makefs@*")
        assert "region data: made the filesystem" in loud, loud
        assert ("Warning: region 'data': what it kept is gone: the previous boot used its "
                "memory as RAM") in healed["pmemctl_status"]["stdout"], \
            healed["pmemctl_status"]["stdout"]
    else:
        assert made["basis"] == "was-ram", made
    trip.seen.update(healed_basis=made["basis"])
    # At the very end (it leaves the data region degraded): a filesystem made by hand.
    started = time.monotonic()
    assert_hand_made_xfs_is_degraded(journey, device)
    vm_timing("a hand-made xfs: mkfs, mount, verify-dax, degraded", time.monotonic() - started)
    assert journey.guest.poweroff() == 0
    assert journey.guest.boots == BOOTS
    trip.done.add(4)
