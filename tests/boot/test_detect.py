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
from pmemd.boot.firmware import LOADER_INFO, decode_variable
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


def loader_info(root: Path, product: str | None, *, efi: bool = True,
                variables: bool = True) -> None:
    """The running boot loader as the firmware's variables show it (efivarfs' format)."""
    efivars = root / "sys/firmware/efi/efivars"
    if not efi:
        shutil.rmtree(root / "sys/firmware/efi", ignore_errors=True)
        return
    efivars.mkdir(parents=True, exist_ok=True)
    if variables:  # one variable every UEFI machine has
        (efivars / "BootCurrent-8be4df61-93ca-11d2-aa0d-00e098032b8c").write_bytes(
            b"\x06\x00\x00\x00\x01\x00")
    if product is not None:
        (efivars / LOADER_INFO).write_bytes(
            b"\x06\x00\x00\x00" + f"{product}\0".encode("utf-16-le"))


@pytest.mark.parametrize(("efi", "variables", "product", "kind", "said"), [
    # systemd-boot ran: its entries are what the firmware boots
    (True, True, "systemd-boot 252.39-1~deb12u2", BootloaderChoice.KERNEL_INSTALL,
     "LoaderInfo variable says 'systemd-boot 252.39-1~deb12u2'"),
    # GRUB 2.12's bli module sets it too: GRUB's files are the ones it reads
    (True, True, "GRUB 2.12", BootloaderChoice.UPDATE_GRUB,
     "systemd-boot's files are here too, but the firmware's LoaderInfo variable says "
     "'GRUB 2.12', so update-grub"),
    # Debian 12's GRUB sets nothing; systemd-boot always would
    (True, True, None, BootloaderChoice.UPDATE_GRUB, "UEFI without a LoaderInfo variable"),
    # a BIOS boot: systemd-boot cannot have started it
    (False, False, None, BootloaderChoice.UPDATE_GRUB, "this boot was through BIOS"),
    # UEFI but efivarfs not mounted: cannot tell; the more specific files win, and it says so
    (True, False, None, BootloaderChoice.KERNEL_INSTALL, "name the bootloader in the config"),
])
def test_two_bootloaders_are_resolved_by_the_one_that_ran(
        tree: Tree, efi: bool, variables: bool, product: str | None, kind: BootloaderChoice,
        said: str) -> None:
    """GRUB's files left behind after a move to systemd-boot, or systemd-boot's files on a
    machine that still boots GRUB: the firmware's variables say which loader ran."""
    root = tree("debian12", config=config_text(("data", "4G", "12G")))
    shutil.copytree(tree("debian12-systemd-boot"), root, dirs_exist_ok=True)
    loader_info(root, product, efi=efi, variables=variables)
    found = detect(Machine(root))
    assert found.backend is not None and found.backend.kind is kind, found.reason
    assert found.reason.startswith(f"{kind.value}: ") and said in found.reason, found.reason
    fitting = {p.kind for p in found.probes if p.backend is not None}
    assert fitting == {BootloaderChoice.KERNEL_INSTALL, BootloaderChoice.UPDATE_GRUB}
    shown = json.loads(run_pmemd("plan", "--root", str(root), "--json").stdout)["bootloader"]
    assert shown["backend"] == kind.value and said in shown["reason"], shown
    assert {c["backend"] for c in shown["candidates"] if c["fits"]} == {
        "kernel-install", "update-grub"}, shown


@pytest.mark.parametrize("product", ["GRUB 2.12", None])
def test_one_bootloader_is_kept_whatever_the_firmware_says(tree: Tree,
                                                         product: str | None) -> None:
    """The evidence only chooses between candidates: it never rejects the only one."""
    root = tree("debian12-systemd-boot")
    loader_info(root, product)
    found = detect(Machine(root))
    assert found.backend is not None
    assert found.backend.kind is BootloaderChoice.KERNEL_INSTALL, found.reason


def test_explicit_choice_beats_the_firmware(tree: Tree) -> None:
    root = tree("debian12")
    shutil.copytree(tree("debian12-systemd-boot"), root, dirs_exist_ok=True)
    loader_info(root, "systemd-boot 252")
    found = detect(Machine(root), BootloaderChoice.UPDATE_GRUB)
    assert found.backend is not None and found.backend.kind is BootloaderChoice.UPDATE_GRUB


@pytest.mark.parametrize(("data", "text"), [
    (b"\x06\x00\x00\x00" + "systemd-boot 252\0".encode("utf-16-le"), "systemd-boot 252"),
    (b"\x06\x00\x00\x00" + "GRUB 2.12".encode("utf-16-le"), "GRUB 2.12"),  # no NUL
    (b"\x06\x00\x00\x00", ""),
    (b"\x06\x00", ""),
    (b"\x06\x00\x00\x00\x41", "\ufffd"),  # an odd byte: replaced, never an exception
])
def test_efi_variable_text(data: bytes, text: str) -> None:
    assert decode_variable(data) == text


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
