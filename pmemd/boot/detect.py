"""Which backend fits a machine, and why: every candidate says why it matches or not, so
an undetectable machine gets a clear error rather than a guess."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pmemd.boot.backends import grubby, kernel_install, mkconfig, update_grub
from pmemd.boot.backends.base import Backend, Probe
from pmemd.boot.firmware import LOADER_INFO, running_loader
from pmemd.core.model import BootloaderChoice
from pmemd.errors import NoBootloader
from pmemd.machine.root import PROGRAM_DIRS, Machine

# Tried in this order: the most specific evidence first (systemd-boot's own files beat BLS
# entries GRUB may also read; grubby beats a plain grub2-mkconfig on Fedora/RHEL).
PROBES = (kernel_install.probe, grubby.probe, update_grub.probe, mkconfig.probe)
PROGRAMS = (update_grub.TOOL, grubby.TOOL, *mkconfig.TOOLS)


@dataclass(frozen=True)
class Detection:
    backend: Backend | None
    reason: str
    probes: tuple[Probe, ...]

    def require(self) -> Backend:
        if self.backend is None:
            raise NoBootloader(self.reason)
        return self.backend


def detect(machine: Machine, choice: BootloaderChoice = BootloaderChoice.AUTO) -> Detection:
    probes = tuple(probe(machine) for probe in PROBES)
    if choice is BootloaderChoice.AUTO:
        fitting = [p for p in probes if p.backend is not None]
        if fitting:
            found, how = _resolve(machine, fitting)
            assert found.backend is not None
            return Detection(found.backend, f"{found.kind.value}: {found.reason}{how}", probes)
        why = "; ".join(f"{p.kind.value}: {p.reason}" for p in probes)
        return Detection(None, f"no supported bootloader found ({why}). If the machine has "
                               "one of them, name it in the config (boot.bootloader)", probes)
    chosen = next(p for p in probes if p.kind is choice)
    if chosen.backend is None:
        return Detection(None, f"boot.bootloader is {choice.value}, but {chosen.reason}",
                         probes)
    return Detection(chosen.backend, f"{choice.value} (boot.bootloader in the config): "
                                     f"{chosen.reason}", probes)


def _resolve(machine: Machine, fitting: list[Probe]) -> tuple[Probe, str]:
    """The candidate the firmware really boots through, when systemd-boot and GRUB both
    fit: the running boot loader decides, not the files alone (and the order of
    :data:`PROBES` when it cannot be told)."""
    systemd_boot = [p for p in fitting if p.kind is BootloaderChoice.KERNEL_INSTALL]
    grub = [p for p in fitting if p.kind is not BootloaderChoice.KERNEL_INSTALL]
    if not systemd_boot or not grub:
        return fitting[0], ""
    ran = running_loader(machine)
    if ran.systemd_boot is False:
        return grub[0], (f"; systemd-boot's files are here too, but {ran.evidence}, so "
                         f"{grub[0].kind.value}")
    also = ", ".join(p.kind.value for p in grub)
    if ran.systemd_boot is True:
        return systemd_boot[0], f"; {also} fit too, but {ran.evidence}"
    return systemd_boot[0], (f"; {also} fit too and {ran.evidence}: systemd-boot's files "
                             "are the more specific (name the bootloader in the config "
                             "(boot.bootloader) if that is wrong)")


def probed_paths(machine: Machine) -> tuple[Path, ...]:
    """Every path detection looks at (a change to any may change the backend)."""
    programs = tuple(machine.path(f"{d}/{name}") for name in PROGRAMS for d in PROGRAM_DIRS)
    boots = tuple(p for _, root in machine.boot_roots
                  for p in (root, root / kernel_install.ENTRIES, root / kernel_install.LOADER_CONF,
                            root / "EFI" / "systemd"))
    return (*programs, *boots, machine.etc_default_grub, machine.loader_entries,
            machine.os_release, machine.sys_firmware_efi, machine.efivars / LOADER_INFO)
