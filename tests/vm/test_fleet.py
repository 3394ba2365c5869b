"""The Ansible collection's role rolled out over a fleet of two real machines: qemu guests
from the end-to-end harness, one booting Debian 12 from GRUB (BIOS) and one from
systemd-boot (UEFI, OVMF), each from its base image (no pmemd: the role installs the .deb
built from this checkout), SSH forwarded on 127.0.0.1 only, host keys pinned. From the host,
``ansible-playbook`` runs the README's playbook (``ansible/examples/pmemd.yml``:
``serial: 1``, ``max_fail_percentage: 0``, ``pmemd_reboot_ok: true``), its variables
given with ``-e`` for these 2 GiB guests.

The five scenarios share the fleet and run in order (two boots of each guest after its
first):

1. two regions rolled out: each host gets the .deb, its config, a trial boot through its
   own bootloader, verified by pmemd before the role goes on; one host at a time, each
   rebooted exactly once; ``pmemd_info`` and the guest itself show both DAX mounts;
2. the same playbook again: ``changed=0`` on both, no reboot;
3. ``--check --diff`` with a region resized: the diff (the YAML and the next boot's
   ``memmap=`` options) shown for both hosts, nothing written on either (every file of the
   boot configuration and pmemd's state byte for byte), no reboot;
4. a config that the first host rejects (a region beyond its memory): that host fails with
   pmemd's located error, the rollout stops, the second host is never contacted; nothing
   written on either;
5. ``pmemd_state: absent``: the options come off each bootloader, the package goes, each
   host reboots once and has no pmem left.

The fleet's files (inventory, known_hosts, every run's JSON and stderr) and each guest's
console and steps: ``tests/vm/artifacts/fleet/``.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.vm.conftest import ARTIFACTS
from tests.vm.e2e import (
    DebError,
    Journey,
    RegionSpec,
    assert_mounted_with_dax,
    build_pmemd_deb,
    failed_units,
    memmap_options,
)
from tests.vm.fleet import Fleet, Host, ansible_playbook
from tests.vm.image import BIOS, UEFI, ImageError, ensure_base
from tests.vm.network import free_port, network_args
from tests.vm.qemu import Guest

pytestmark = pytest.mark.vm

DATA = RegionSpec("data", "512M", "1G", "xfs", "/pmem-data")
SCRATCH = RegionSpec("scratch", "256M", "512M", "ext4", "/pmem-scratch")
# pmemd's options on the next boot, by address; nokaslr from the playbook's pmemd_boot
OPTIONS = [SCRATCH.memmap, DATA.memmap, "nokaslr"]
# 1 + the rollout's + the removal's; one more is a loop
BOOTS = 3
TOTAL_TIMEOUT = 3000.0
CONFIGURE = "Configure pmemd (/etc/pmemd.yaml, then the boot configuration)"
REPORT = "Read what pmemd says"
REMOVE = "Take pmemd's options off the boot configuration"
# What a run may write: the config, pmemd's state, each bootloader's files (GRUB's on the
# BIOS guest; the ESP's and /etc/kernel on the UEFI guest); a fingerprint of every file.
FINGERPRINT = ("find /etc/pmemd.yaml /etc/default /etc/kernel /boot/grub /efi/loader "
               "/var/lib/pmemd -xdev -type f 2>/dev/null | sort | xargs -r sha256sum\n")


def role_region(region: RegionSpec) -> dict[str, Any]:
    """``region`` as an item of ``pmemd_regions``."""
    return {"name": region.name, "size": region.size, "offset": region.offset,
            "filesystem": {"type": region.fstype, "mountpoint": region.mountpoint}}


class Rollout:
    """The fleet, and which scenarios have completed."""

    def __init__(self, fleet: Fleet, deb: str) -> None:
        self.fleet = fleet
        self.deb = deb
        self.done: set[int] = set()

    def require(self, scenario: int) -> None:
        if scenario not in self.done:
            pytest.fail(f"scenario {scenario} did not complete, and this one starts from the "
                        "fleet it leaves (see its failure)", pytrace=False)

    def play(self, what: str, *options: str, **variables: Any) -> Any:
        return self.fleet.run(what, *options, **{"pmemd_package": self.deb, **variables})

    def fingerprints(self, name: str) -> dict[str, str]:
        return {host.name: host.journey.check(FINGERPRINT, name).stdout
                for host in self.fleet.hosts}

    def boots(self) -> dict[str, int]:
        return {host.name: host.guest.boots for host in self.fleet.hosts}

    @contextlib.contextmanager
    def untouched(self, name: str) -> Iterator[None]:
        """Every file a run may write on either host (byte for byte) and their boots are
        the same after the block as before it."""
        boots = self.boots()
        files = self.fingerprints(f"fingerprint-before-{name}")
        yield
        assert self.fingerprints(f"fingerprint-after-{name}") == files
        assert self.boots() == boots


@pytest.fixture(scope="module")
def rollout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rollout]:
    try:
        deb = build_pmemd_deb(tmp_path_factory.mktemp("deb"))
        images = {BIOS: ensure_base(), UEFI: ensure_base(family=UEFI)}
    except (DebError, ImageError) as err:
        pytest.fail(f"the fleet cannot be prepared: {err}", pytrace=False)
    command = ansible_playbook()
    workdir = ARTIFACTS / "fleet"
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    hosts = []
    for name, family in (("grub", BIOS), ("sdboot", UEFI)):
        port = free_port()
        guest = Guest(images[family].path, workdir / name, max_boots=BOOTS,
                      timeout=TOTAL_TIMEOUT, uefi=family is UEFI, extra_args=network_args(port))
        hosts.append(Host(name, Journey(guest), port))
    fleet = Fleet(hosts, workdir, command)
    try:
        for host in hosts:
            host.guest.start()
        for host in hosts:
            host.journey.first_boot()
            host.open_ssh(fleet.public_key())
        fleet.write_inventory()
        yield Rollout(fleet, str(deb))
    finally:
        for host in hosts:
            host.guest.close()
        fleet.close()


@pytest.fixture
def scenario(rollout: Rollout, vm_timing: Callable[[str, float], None]) -> Iterator[Rollout]:
    started = time.monotonic()
    try:
        yield rollout
    finally:
        vm_timing("scenario", time.monotonic() - started)


def two_regions() -> dict[str, Any]:
    return {"pmemd_regions": [role_region(DATA), role_region(SCRATCH)]}


def consume_reboot(guest: Guest) -> None:
    """Take note of the boot that ansible's reboot made (the step runner said ready)."""
    guest.wait_boot(timeout=120.0)


def test_two_regions_roll_out_one_host_at_a_time_each_rebooted_once(scenario: Rollout) -> None:
    before = scenario.boots()
    outcome = scenario.play("rollout, two regions", **two_regions())
    for host in scenario.fleet.hosts:
        stats = outcome.stats(host.name)
        assert stats["failures"] == 0 and stats["unreachable"] == 0, outcome.failed(host.name)
        configured = outcome.result(host.name, CONFIGURE)
        assert configured["changed"] and configured["reboot_required"], configured
        assert configured["memmap"] == {"before": [], "after": OPTIONS}, configured
        report = outcome.result(host.name, REPORT)["pmemd"]
        assert report["state"] == "converged" and report["trial"] == "committed", report
        regions = {r["name"]: r for r in report["regions"]}
        for region in (DATA, SCRATCH):
            found = regions[region.name]
            assert found["state"] == "ready" and found["dax"], found
            assert found["mountpoint"] == region.mountpoint, found
    assert outcome.status == 0, outcome.stderr[-2000:]
    assert scenario.boots() == {name: count + 1 for name, count in before.items()}
    grub, sdboot = scenario.fleet.hosts
    for host in (grub, sdboot):
        consume_reboot(host.guest)
    # one at a time: the second host's reboot began after the first host was back and verified
    assert sdboot.guest.boot_started[-1] > grub.guest.ready_at[-1], "not one at a time"
    for host in (grub, sdboot):
        snapshot = host.journey.snapshot(f"rolled-out-{host.name}")
        assert memmap_options(snapshot["cmdline"]) == OPTIONS[:2], snapshot["cmdline"]
        assert "nokaslr" in snapshot["cmdline"]
        # this boot is the trial boot (its entry's mark), verified and committed
        assert any(word.startswith("pmemd.trial=") for word in snapshot["cmdline"])
        for region in (DATA, SCRATCH):
            assert_mounted_with_dax(snapshot, region)
        assert failed_units(snapshot) == [], snapshot["failed_units"]
    scenario.done.add(1)


def test_the_same_playbook_again_changes_nothing_and_reboots_nothing(scenario: Rollout) -> None:
    scenario.require(1)
    before = scenario.boots()
    outcome = scenario.play("rollout again", **two_regions())
    assert outcome.status == 0, outcome.stderr[-2000:]
    for host in scenario.fleet.hosts:
        assert outcome.stats(host.name)["changed"] == 0, [
            name for name, result in outcome.results(host.name) if result.get("changed")]
        assert outcome.stats(host.name)["failures"] == 0
    assert scenario.boots() == before
    scenario.done.add(2)


def test_check_diff_shows_the_change_on_every_host_and_writes_nothing(scenario: Rollout) -> None:
    scenario.require(2)
    bigger = RegionSpec("scratch", "384M", "512M", "ext4", "/pmem-scratch")
    with scenario.untouched("check"):
        outcome = scenario.play("--check --diff, scratch resized", "--check", "--diff",
                                pmemd_regions=[role_region(DATA), role_region(bigger)])
    assert outcome.status == 0, outcome.stderr[-2000:]
    for host in scenario.fleet.hosts:
        configured = outcome.result(host.name, CONFIGURE)
        assert configured["changed"] and configured["reboot_required"], configured
        memmap = configured["memmap"]
        assert memmap["before"] == OPTIONS, memmap
        assert sorted(memmap["after"]) == sorted([bigger.memmap, DATA.memmap, "nokaslr"]), \
            memmap
        diffs = configured["diff"] if isinstance(configured["diff"], list) \
            else [configured["diff"]]
        shown = "".join(str(d.get("before", "")) + str(d.get("after", "")) for d in diffs)
        assert "size: 384M" in shown and bigger.memmap in shown, diffs
    scenario.done.add(3)


def test_a_host_that_rejects_the_config_fails_and_the_rollout_stops(scenario: Rollout) -> None:
    scenario.require(3)
    too_big = RegionSpec("data", "4G", "1G", "xfs", "/pmem-data")
    with scenario.untouched("rejected"):
        outcome = scenario.play("a region beyond the first host's memory",
                                pmemd_regions=[role_region(too_big), role_region(SCRATCH)])
    grub, sdboot = scenario.fleet.hosts
    assert outcome.status != 0
    failed = outcome.failed(grub.name)
    assert [name for name, _ in failed] == [CONFIGURE], failed
    message = failed[0][1]["msg"]
    assert "/etc/pmemd.yaml:" in message and "regions[0]" in message, message
    assert outcome.results(sdboot.name) == [] and outcome.stats(sdboot.name)["ok"] == 0, \
        outcome.results(sdboot.name)
    scenario.done.add(4)


def test_absent_takes_the_options_off_reboots_and_leaves_no_pmem(scenario: Rollout) -> None:
    scenario.require(4)
    before = scenario.boots()
    outcome = scenario.play("pmemd_state: absent", pmemd_state="absent")
    assert outcome.status == 0, outcome.stderr[-2000:]
    for host in scenario.fleet.hosts:
        assert outcome.stats(host.name)["failures"] == 0, outcome.failed(host.name)
        removal = outcome.result(host.name, REMOVE)
        assert removal["rc"] == 5 and removal["changed"], removal
    assert scenario.boots() == {name: count + 1 for name, count in before.items()}
    for host in scenario.fleet.hosts:
        consume_reboot(host.guest)
        step = host.journey.check(
            "cat /proc/cmdline\n"
            "ls /dev | grep -c '^pmem' || true\n"
            "dpkg-query -W -f '${db:Status-Status}\\n' pmemd 2>/dev/null || echo gone\n"
            # pmemd's backups beside the files it changed stay, for the admin (by design)
            "grep -rl --exclude='*.pmemd-bak' --exclude='*.pmemd-orig' 'memmap=' "
            "/etc/default /etc/kernel /boot/grub/grub.cfg /efi/loader 2>/dev/null || true\n",
            f"absent-{host.name}")
        cmdline, devices, package, *mentions = step.stdout.splitlines()
        assert "memmap=" not in cmdline, cmdline
        assert devices == "0", step.stdout
        assert package in ("gone", "not-installed", "config-files"), package
        assert mentions == [], mentions
    scenario.done.add(5)
