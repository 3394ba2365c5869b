"""Detection says which backend fits and why, picks the most specific one, fails clearly
when nothing fits; `pmemd plan` shows it and judges changes against its next boot."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pmemd.boot.backends.mkconfig import grub_cfg_output
from pmemd.boot.detect import detect
from pmemd.core.model import BootloaderChoice
from pmemd.errors import NoBootloader
from pmemd.machine.root import Machine
from tests.boot.conftest import STANDINS, config_text
from tests.conftest import run_pmemd

Tree = Callable[..., Path]


def install(root: Path, program: str) -> None:
    target = root / "usr" / "sbin" / program
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(STANDINS / program, target)


@pytest.mark.parametrize(("distro", "programs", "kind", "evidence"), [
    ("debian12", (), BootloaderChoice.UPDATE_GRUB, "/usr/sbin/update-grub"),
    ("debian12-systemd-boot", (), BootloaderChoice.KERNEL_INSTALL, "loader.conf"),
    ("fedora39", ("grubby", "grub2-mkconfig"), BootloaderChoice.GRUBBY, "3 BLS entries"),
    ("el8", ("grubby", "grub2-mkconfig"), BootloaderChoice.GRUBBY, "2 BLS entries"),
    ("sle15", ("grub2-mkconfig",), BootloaderChoice.GRUB2_MKCONFIG, "stub"),
    ("el7", ("grub2-mkconfig", "grubby"), BootloaderChoice.GRUB2_MKCONFIG, "BIOS boot"),
])
def test_each_distro_is_detected_with_its_evidence(tree: Tree, distro: str,
                                                   programs: tuple[str, ...],
                                                   kind: BootloaderChoice, evidence: str) -> None:
    root = tree(distro)
    for program in programs:
        install(root, program)
    found = detect(Machine(root))
    assert found.backend is not None and found.backend.kind is kind
    assert found.reason.startswith(kind.value) and evidence in found.reason


def test_systemd_boot_wins_over_update_grub_on_the_same_machine(tree: Tree) -> None:
    root = tree("debian12")
    shutil.copytree(tree("debian12-systemd-boot"), root, dirs_exist_ok=True)
    found = detect(Machine(root))
    assert found.backend is not None and found.backend.kind is BootloaderChoice.KERNEL_INSTALL
    rejected = {p.kind for p in found.probes if p.backend is None}
    assert BootloaderChoice.UPDATE_GRUB not in rejected  # it fits too, it is just less specific


def test_bls_system_without_grubby_is_an_error_not_a_guess(tree: Tree) -> None:
    root = tree("fedora39")
    install(root, "grub2-mkconfig")
    found = detect(Machine(root))
    assert found.backend is None
    assert "GRUB_ENABLE_BLSCFG=true" in found.reason and "no grubby program" in found.reason
    with pytest.raises(NoBootloader, match="no supported bootloader found"):
        found.require()


def test_nothing_detectable_explains_every_candidate(tree: Tree) -> None:
    found = detect(Machine(tree(None)))
    assert found.backend is None
    for kind in BootloaderChoice:
        if kind is not BootloaderChoice.AUTO:
            assert f"{kind.value}: " in found.reason
    assert "boot.bootloader" in found.reason


def test_explicit_choice_is_checked(tree: Tree) -> None:
    root = tree("debian12")
    found = detect(Machine(root), BootloaderChoice.GRUBBY)
    assert found.backend is None
    assert found.reason == "boot.bootloader is grubby, but no grubby program (Fedora/RHEL)"
    chosen = detect(Machine(root), BootloaderChoice.UPDATE_GRUB)
    assert chosen.backend is not None and "boot.bootloader in the config" in chosen.reason


@pytest.mark.parametrize(("distro", "efi", "output", "why"), [
    ("sle15", True, "boot/grub2/grub.cfg", "stub"),
    ("sle15", False, "boot/grub2/grub.cfg", "BIOS"),
    ("el7", True, "boot/efi/EFI/centos/grub.cfg", "full config"),
    ("el7", False, "boot/grub2/grub.cfg", "BIOS"),
    ("fedora39", True, "boot/grub2/grub.cfg", "Fedora 34+, EL9"),
])
def test_grub2_mkconfig_output_bios_efi_and_the_efi_stub(tree: Tree, distro: str, efi: bool,
                                                          output: str, why: str) -> None:
    root = tree(distro)
    firmware = root / "sys/firmware/efi"
    if efi:
        firmware.mkdir(parents=True, exist_ok=True)
    elif firmware.exists():
        shutil.rmtree(firmware)
    found = grub_cfg_output(Machine(root))
    assert found.path == root / output and why in found.reason


def test_two_unknown_efi_vendors_are_an_error(tree: Tree) -> None:
    root = tree("el7")
    (root / "sys/firmware/efi").mkdir(parents=True)
    shutil.copytree(root / "boot/efi/EFI/centos", root / "boot/efi/EFI/other")
    (root / "etc/os-release").write_text("ID=somethingelse\n")
    with pytest.raises(NoBootloader, match="several vendor configs"):
        grub_cfg_output(Machine(root))


# --- pmemd plan --------------------------------------------------------------------------------


def test_plan_names_the_backend_and_judges_against_the_next_boot(tree: Tree) -> None:
    """The running kernel lacks memmap=4G!12G but the generated grub.cfg has it: the boot
    configuration is done, only a reboot is missing (not 'changes pending')."""
    root = tree("debian12", config=config_text(("data", "4G", "12G")))
    shutil.copytree(tree("debian12-memmap"), root, dirs_exist_ok=True)
    done = run_pmemd("plan", "--root", str(root))
    assert done.returncode == 5, done.stdout + done.stderr
    assert "Boot:     update-grub: " in done.stdout
    assert "next boot: " in done.stdout and "entry 'Debian GNU/Linux'" in done.stdout
    assert "= memmap=4G!12G" in done.stdout
    document = json.loads(run_pmemd("plan", "--root", str(root), "--json").stdout)
    assert document["bootloader"]["backend"] == "update-grub"
    assert "memmap=4G!12G" in document["bootloader"]["next_boot"]["cmdline"]
    assert document["bootloader"]["owned"] == ["memmap=4G!12G"]


def test_plan_without_a_bootloader_still_works_and_says_so(tree: Tree) -> None:
    root = tree(None, config=config_text(("data", "4G", "12G")))
    done = run_pmemd("plan", "--root", str(root))
    assert done.returncode == 4, done.stderr
    assert "Boot:     no bootloader detected: no supported bootloader found" in done.stdout
    assert "judged against the running command line" in done.stdout
    assert json.loads(run_pmemd("plan", "--root", str(root), "--json").stdout)[
        "bootloader"]["backend"] is None
