"""systemd-boot and kernel-install through real reboots: a Debian 12 guest under qemu with
UEFI firmware (Debian's ovmf), a GPT disk whose ESP holds systemd-boot (``bootctl
install``) and kernel-install's type #1 entry, and pmemd's .deb from this checkout.

One guest, four scenarios in order (five boots):

1. pmemd detects systemd-boot by its own files and arms a trial boot: its own entry
   ``pmemd-trial.conf`` on the ESP (the default entry and ``/etc/kernel/cmdline``
   untouched) and ``bootctl set-oneshot`` (the EFI variable ``LoaderEntryOneShot``); the
   reboot boots it once, pmemd-trial.service verifies the region (device by address, DAX
   mount) and commits: ``/etc/kernel/cmdline`` and the default entry carry the option,
   the trial entry is gone; the next, ordinary boot has the option without any one-time
   selection, converged;
2. the region removed: the option leaves both files, and after the reboot the device and
   the mount are gone, the memory is the system's again;
3. an invalid config: a located error, and ``/etc/kernel/cmdline`` and the ESP's entry are
   unchanged byte for byte;
4. unified kernel images built here: kernel-install's ``layout=uki`` and a builder plugin
   (Debian 12's systemd 252 has none: the stand-ins for systemd 254's 60-ukify.install and
   90-uki-copy.install in tests/boot/standins, which build with the guest's real
   systemd-stub and objcopy); the type #1 entry goes, the running kernel's image is the
   only entry. pmemd detects the image and that it is built here, writes
   ``/etc/kernel/cmdline`` and rebuilds the image with ``kernel-install add``; the reboot
   boots the image (``LoaderEntrySelected`` names it) with the option, the region mounted
   with DAX.

Serial console: ``tests/vm/artifacts/<test>/console.log``; every step:
``tests/vm/artifacts/uefi-guest/``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.vm.conftest import Trip, guest_trip
from tests.vm.e2e import (
    Journey,
    RegionSpec,
    assert_mounted_with_dax,
    failed_units,
    memmap_options,
    mount_at,
    render_config,
    size_bytes,
)
from tests.vm.image import UEFI

pytestmark = pytest.mark.vm

DATA = RegionSpec("data", "512M", "1G", "xfs", "/pmem-data")
BOOTS = 5  # 1 + 2 (trial, ordinary) + 1 (removal) + 1 (the unified kernel image)
TOTAL_TIMEOUT = 2400.0
KERNEL_CMDLINE = "/etc/kernel/cmdline"
# the ESP's entries, as a step lists them (their names carry the machine id and the kernel)
ENTRIES = "cat $(ls /efi/loader/entries/*.conf | grep -v /pmemd-trial.conf)\n"
TRIAL_ENTRY = "/efi/loader/entries/pmemd-trial.conf"
# systemd-boot's one-time selection, as a step prints it (the variable's UTF-16 value)
ONE_SHOT = ("python3 -c \"import pathlib; p = pathlib.Path('/sys/firmware/efi/efivars/"
            "LoaderEntryOneShot-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f'); "
            "print(p.read_bytes()[4:].decode('utf-16-le').rstrip(chr(0)) if p.exists() "
            "else '(none)')\"\n")


# the builder stand-ins (Debian 12's systemd 252 ships no plugin that builds a UKI)
STANDINS = Path(__file__).resolve().parents[1] / "boot" / "standins"
BUILDERS = ("60-ukify.install", "90-uki-copy.install")
LOADER_ENTRY_SELECTED = ONE_SHOT.replace("LoaderEntryOneShot", "LoaderEntrySelected")


def image_cmdline(image: str) -> str:
    """A step that prints a unified kernel image's .cmdline section (binutils' objcopy)."""
    return (f"objcopy -O binary --only-section=.cmdline {image} /tmp/cmdline.bin\n"
            "cat /tmp/cmdline.bin\necho\n")


@pytest.fixture(scope="module")
def trip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trip]:
    yield from guest_trip(tmp_path_factory, "uefi-guest", max_boots=BOOTS,
                          timeout=TOTAL_TIMEOUT, family=UEFI)


def boot_files(journey: Journey, name: str) -> tuple[str, str]:
    """``/etc/kernel/cmdline`` and the ESP's entries, as they are now."""
    step = journey.check(f"cat {KERNEL_CMDLINE}\necho ---\n{ENTRIES}", name)
    cmdline, _, entries = step.stdout.partition("---\n")
    return cmdline, entries


def entry_options(entries: str) -> list[list[str]]:
    return [line.split()[1:] for line in entries.splitlines() if line.startswith("options")]


def test_systemd_boot_tries_the_change_once_then_commits_it(
        scenario: Trip, vm_timing: Callable[[str, float], None]) -> None:
    trip, journey = scenario, scenario.journey
    vm_timing(".deb build + UEFI image with it installed", trip.prepared)
    first = journey.first_boot()
    vm_timing("boot 1 (OVMF, systemd-boot) to multi-user", first.seconds)
    loader = journey.check("bootctl status --no-pager 2>&1 | grep -i -e 'Product' "
                           "-e 'Current Entry' || true\n", "bootctl").stdout
    assert "systemd-boot" in loader, loader  # the firmware ran systemd-boot
    before_cmdline, before_entries = boot_files(journey, "files-before")

    journey.install_config(render_config([DATA], reboot="never"))
    plan = journey.snapshot("planned", wait=False)["pmemd_plan_json"]
    assert plan["bootloader"]["backend"] == "kernel-install", plan["bootloader"]
    assert plan["trial"]["next_change"] == "arm", plan["trial"]
    reconciled = journey.reconcile_unit("reconcile-arms")
    assert (reconciled["result"], reconciled["status"]) == ("success", "5"), reconciled
    assert "Ran: bootctl set-oneshot pmemd-trial.conf" in reconciled["journal"], \
        reconciled["journal"]
    assert boot_files(journey, "files-armed") == (before_cmdline, before_entries)
    trial_entry = journey.check(f"cat {TRIAL_ENTRY}\n", "trial-entry").stdout
    tried = entry_options(trial_entry)
    assert len(tried) == 1 and DATA.memmap in tried[0] and "panic=10" in tried[0], trial_entry
    assert "sort-key debian-pmemd-trial" in trial_entry, trial_entry
    assert journey.check(ONE_SHOT, "one-shot").stdout.strip() == "pmemd-trial.conf"

    second = journey.guest.reboot()
    vm_timing("reboot into the trial boot (bootctl set-oneshot), verified", second.seconds)
    booted = journey.snapshot("trial-boot")
    assert memmap_options(booted["cmdline"]) == [DATA.memmap], booted["cmdline"]
    assert any(w.startswith("pmemd.trial=") for w in booted["cmdline"]), booted["cmdline"]
    assert_mounted_with_dax(booted, DATA)
    assert journey.property("Trial") == 's "committed"', booted["pmemctl_status"]
    cmdline, entries = boot_files(journey, "files-committed")
    assert cmdline.split() == [*before_cmdline.split(), DATA.memmap], cmdline
    options = entry_options(entries)
    assert options and all(DATA.memmap in o and "panic=10" not in o for o in options), entries
    assert journey.run(f"test -e {TRIAL_ENTRY}\n", "no-trial-entry").status == 1
    assert journey.check(ONE_SHOT, "one-shot-used").stdout.strip() == "(none)"
    assert booted["pmemctl_status_json"]["State"] == "converged", booted["pmemctl_status"]

    third = journey.guest.reboot()
    vm_timing("ordinary reboot (systemd-boot) to multi-user", third.seconds)
    booted = journey.snapshot("ordinary-boot")
    assert memmap_options(booted["cmdline"]) == [DATA.memmap], booted["cmdline"]
    assert not any(w.startswith("pmemd.trial=") for w in booted["cmdline"])
    assert_mounted_with_dax(booted, DATA)
    assert booted["pmemctl_status_json"]["State"] == "converged", booted["pmemctl_status"]
    assert booted["system_state"] == "running", failed_units(booted)
    trip.seen.update(booted=booted)
    trip.done.add(1)


def test_removing_the_region_takes_its_option_off_the_esp(
        scenario: Trip, vm_timing: Callable[[str, float], None]) -> None:
    trip, journey = scenario, scenario.journey
    trip.require(1)
    journey.install_config(render_config([], reboot="auto"))
    started = time.monotonic()
    journey.reconcile_reboots("reconcile-removes")
    vm_timing("reconcile's reboot to multi-user", time.monotonic() - started)
    after = journey.snapshot("removed")
    cmdline, entries = boot_files(journey, "files-removed")
    assert "memmap=" not in cmdline and "memmap=" not in entries, (cmdline, entries)
    assert memmap_options(after["cmdline"]) == [] and after["devices"] == {}
    assert mount_at(after, DATA.mountpoint) is None
    returned = (after["mem_total_kib"] - trip.seen["booted"]["mem_total_kib"]) * 1024
    # less the struct pages the kernel allocates for the returned RAM (64 bytes a page)
    assert abs(returned - size_bytes(DATA.size)) <= size_bytes(DATA.size) // 64 + (1 << 20), \
        returned
    assert after["pmemctl_status_json"]["State"] == "converged", after["pmemctl_status"]
    assert journey.guest.boots == 4
    trip.done.add(2)


def test_an_invalid_config_leaves_the_esp_alone(scenario: Trip) -> None:
    trip, journey = scenario, scenario.journey
    trip.require(2)
    before = boot_files(journey, "files-before")
    text = render_config([dataclasses.replace(DATA, size="0512M")], reboot="auto")
    line = text.splitlines().index("    size: 0512M") + 1
    journey.install_config(text)
    reconciled = journey.reconcile_unit("reconcile-invalid")
    assert (reconciled["result"], reconciled["status"]) == ("exit-code", "3"), reconciled
    assert f"/etc/pmemd.yaml:{line}:11: regions[0].size:" in reconciled["journal"]
    assert boot_files(journey, "files-after") == before
    assert journey.guest.boots == 4
    trip.done.add(3)


def test_a_unified_kernel_image_built_here_is_rebuilt_and_boots(
        scenario: Trip, vm_timing: Callable[[str, float], None]) -> None:
    trip, journey = scenario, scenario.journey
    trip.require(3)
    plugins = [journey.guest.put(name, (STANDINS / name).read_text()) for name in BUILDERS]
    built = journey.check(
        "".join(f"install -m 0755 {p} /etc/kernel/install.d/\n" for p in plugins)
        + "echo layout=uki >/etc/kernel/install.conf\n"
        "v=$(uname -r)\n"
        # as Debian's kernel hooks run it: with the initramfs-tools initrd
        "kernel-install add $v /boot/vmlinuz-$v /boot/initrd.img-$v\n"
        "rm /efi/loader/entries/*.conf\n"  # layout=uki: the image is the kernel's entry
        "ls /efi/EFI/Linux/\n", "uki-built")
    images = built.stdout.split()
    assert len(images) == 1 and images[0].endswith(".efi"), built.stdout
    image = f"/efi/EFI/Linux/{images[0]}"
    assert DATA.memmap not in journey.check(image_cmdline(image), "uki-before").stdout

    journey.install_config(render_config([DATA], reboot="never"))
    plan = journey.snapshot("uki-planned", wait=False)["pmemd_plan_json"]
    boot = plan["bootloader"]
    assert boot["backend"] == "kernel-install", boot
    assert "1 unified kernel images" in boot["reason"] and "built here" in boot["reason"], boot
    assert boot["next_boot"]["source"].endswith(images[0]), boot
    assert plan["trial"]["next_change"] == "direct", plan["trial"]  # no second image to try
    reconciled = journey.reconcile_unit("reconcile-uki")
    assert (reconciled["result"], reconciled["status"]) == ("success", "5"), reconciled
    assert "Ran: kernel-install add " in reconciled["journal"], reconciled["journal"]
    rebuilt = journey.check(f"cat {KERNEL_CMDLINE}\necho ---\n{image_cmdline(image)}",
                            "uki-rebuilt").stdout
    cmdline, _, inside = rebuilt.partition("---\n")
    assert DATA.memmap in cmdline.split() and DATA.memmap in inside.split(), rebuilt

    started = time.monotonic()
    journey.guest.reboot()
    vm_timing("reboot into the rebuilt unified kernel image", time.monotonic() - started)
    booted = journey.snapshot("uki-boot")
    selected = journey.check(LOADER_ENTRY_SELECTED, "uki-selected").stdout.strip()
    assert selected == images[0], selected  # systemd-boot booted the image
    assert memmap_options(booted["cmdline"]) == [DATA.memmap], booted["cmdline"]
    assert_mounted_with_dax(booted, DATA)
    assert booted["pmemctl_status_json"]["State"] == "converged", booted["pmemctl_status"]
    assert journey.guest.poweroff() == 0
    assert journey.guest.boots == 5
    trip.done.add(4)
