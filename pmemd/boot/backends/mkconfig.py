"""SUSE and EL7: the options go into ``GRUB_CMDLINE_LINUX`` of ``/etc/default/grub`` (edited
in place, every other byte kept), then ``grub2-mkconfig -o <grub.cfg>``.

Where ``grub.cfg`` goes depends on how the machine boots: BIOS reads
``/boot/grub2/grub.cfg``. On EFI, EL7 (and EL8) keep the full config next to the EFI
binary (``/boot/efi/EFI/centos/grub.cfg``), while Fedora 34+, EL9 and SUSE put a small
stub there that loads ``/boot/grub2/grub.cfg``: writing the full config over that stub
would be wrong, so a stub means ``/boot/grub2/grub.cfg``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pmemd.boot.backends.base import Backend, BootWrite, NextBoot, Probe, file_write, on_target
from pmemd.boot.backends.grub import read_grub_next_boot
from pmemd.boot.defaultgrub import edit_default_grub, read_variable
from pmemd.boot.grubcfg import parse_grub_cfg
from pmemd.core.cmdline import CmdlineEdit
from pmemd.core.model import BootloaderChoice
from pmemd.errors import MachineError, NoBootloader
from pmemd.machine.root import Machine

TOOL = "grub2-mkconfig"
# os-release ID -> the directory its EFI binaries live in, where they differ.
_EFI_VENDOR = {"rhel": "redhat", "opensuse-leap": "opensuse", "opensuse-tumbleweed": "opensuse"}


def is_stub(text: str) -> bool:
    """An EFI ``grub.cfg`` that only hands over to another config (no entries of its own)."""
    config = parse_grub_cfg(text)
    if config.entries or config.blscfg:
        return False
    commands = {line.split(None, 1)[0] for line in text.splitlines() if line.strip()}
    return bool(commands & {"configfile", "source"})


def _os_ids(machine: Machine) -> list[str]:
    text = machine.read_text(machine.os_release) or ""
    ids: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids.extend(value.strip().strip("\"'").split())
    return [_EFI_VENDOR.get(i, i) for i in ids]


@dataclass(frozen=True)
class Output:
    path: Path
    reason: str


def grub_cfg_output(machine: Machine) -> Output:
    """Where ``grub2-mkconfig -o`` must write on this machine, and why."""
    bios = machine.grub2_cfg
    if not machine.sys_firmware_efi.is_dir():
        return Output(bios, f"BIOS boot (no {machine.sys_firmware_efi})")
    found = sorted(p for p in machine.efi_vendor_dir.glob("*/grub.cfg")
                   if p.parent.name.upper() != "BOOT")
    if not found:
        return Output(bios, f"EFI boot, no vendor grub.cfg in {machine.efi_vendor_dir}")
    ids = _os_ids(machine)
    preferred = [p for p in found if p.parent.name.lower() in ids]
    candidates = preferred or found
    if len(candidates) > 1:
        raise NoBootloader(
            f"EFI boot with several vendor configs ({', '.join(map(str, candidates))}) and "
            "none matching /etc/os-release: pmemd cannot tell which one the firmware loads")
    efi_cfg = candidates[0]
    if is_stub(machine.read_text(efi_cfg) or ""):
        return Output(bios, f"EFI boot; {efi_cfg} is a stub that loads {bios} "
                            "(Fedora 34+, EL9, SUSE)")
    return Output(efi_cfg, f"EFI boot; {efi_cfg} is the full config (EL7/EL8 layout)")


@dataclass(frozen=True)
class Grub2Mkconfig(Backend):
    tool: str = TOOL

    @property
    def kind(self) -> BootloaderChoice:
        return BootloaderChoice.GRUB2_MKCONFIG

    def read_next_boot(self) -> NextBoot:
        m = self.machine
        out = grub_cfg_output(m).path
        return read_grub_next_boot(m, out, (out.parent / "grubenv", m.grub2_env))

    def plan_write(self, current: NextBoot, edit: CmdlineEdit,
                   owned_after: Sequence[str]) -> BootWrite:
        m = self.machine
        old = m.read_text(m.etc_default_grub)
        if old is None:
            raise MachineError(f"{m.etc_default_grub}: no such file; {self.tool} needs it")
        # The admin's file must carry what pmemd owns even if grub.cfg does (the next
        # grub2-mkconfig, e.g. after a kernel update, would drop it otherwise).
        wanted = CmdlineEdit(add=tuple(owned_after), remove=edit.remove)
        files = file_write(m.etc_default_grub,
                           edit_default_grub(old, wanted, str(m.etc_default_grub)), old)
        if not files and edit.empty:
            return BootWrite()
        out = grub_cfg_output(m).path
        return BootWrite(files=files, commands=((self.tool, "-o", on_target(m, out)),),
                         tool_files=(out, out.with_name(out.name + ".new")))

    def inputs(self) -> tuple[Path, ...]:
        m = self.machine
        out = grub_cfg_output(m).path
        return (m.etc_default_grub, out, out.parent / "grubenv", m.grub2_env,
                m.sys_firmware_efi, m.efi_vendor_dir, *m.efi_vendor_dir.glob("*/grub.cfg"))


def probe(machine: Machine) -> Probe:
    kind = BootloaderChoice.GRUB2_MKCONFIG
    tool = machine.program(TOOL)
    if tool is None:
        return Probe(kind, None, f"no {TOOL} program (SUSE/EL7)")
    default_grub = machine.etc_default_grub
    text = machine.read_text(default_grub)
    if text is None:
        return Probe(kind, None, f"{tool} exists but {default_grub} does not")
    bls = read_variable(text, str(default_grub), "GRUB_ENABLE_BLSCFG")
    if bls == "true" and machine.loader_entries.is_dir():
        return Probe(kind, None, f"{default_grub} sets GRUB_ENABLE_BLSCFG=true: the entries "
                                 f"are BLS files in {machine.loader_entries} (grubby's job)")
    try:
        output = grub_cfg_output(machine)
    except (NoBootloader, MachineError) as err:
        return Probe(kind, None, str(err))
    return Probe(kind, Grub2Mkconfig(machine, tool),
                 f"{tool} and {default_grub}; output {output.path}: {output.reason}")
