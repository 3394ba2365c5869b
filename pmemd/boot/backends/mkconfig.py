"""SUSE and EL7: the options go into ``GRUB_CMDLINE_LINUX`` of ``/etc/default/grub`` (edited
in place, every other byte kept), then ``grub2-mkconfig -o <grub.cfg>``. The same with
upstream GRUB's own name for the program, ``grub-mkconfig`` (Arch, Gentoo, a Debian without
the ``update-grub`` wrapper), which writes ``/boot/grub/grub.cfg``.

A trial boot: pmemd's ``/etc/default/grub.d/pmemd-trial.cfg`` gives the trial entry's
``GRUB_CMDLINE_LINUX`` (the admin's value with the trial's options in place of pmemd's) to
``/etc/grub.d/42_pmemd_trial`` only; ``grub[2]-reboot`` selects the entry for one boot.

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
from pmemd.boot.backends.grub import (
    pending_selection,
    read_grub_next_boot,
    read_grubenv,
    trial_script_problem,
)
from pmemd.boot.backends.update_grub import TRIAL_ID
from pmemd.boot.defaultgrub import edit_default_grub, find_assignment, read_variable
from pmemd.boot.grubcfg import find_entry, parse_grub_cfg
from pmemd.boot.grubenv import probe_grubenv
from pmemd.core.cmdline import (
    Cmdline,
    CmdlineEdit,
    trial_args_text,
)
from pmemd.core.model import BootloaderChoice
from pmemd.errors import MachineError, NoBootloader
from pmemd.machine.root import CONFIG_PATH, Machine
from pmemd.machine.runner import Runner

TOOL = "grub2-mkconfig"
# grub2-mkconfig (Fedora, RHEL, SUSE), then GRUB's own name (Arch, Gentoo, Debian's program
# under its update-grub wrapper)
TOOLS = (TOOL, "grub-mkconfig")
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


def grub_cfg_output(machine: Machine, tool: str = TOOL) -> Output:
    """Where ``grub2-mkconfig -o`` must write on this machine, and why."""
    if Path(tool).name == "grub-mkconfig":
        return Output(machine.grub_cfg, "GRUB's own layout for grub-mkconfig (/boot/grub), "
                                        "BIOS or EFI")
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

    @property
    def _output(self) -> Path:
        return grub_cfg_output(self.machine, self.tool).path

    def _default_grub(self) -> str:
        """The admin's /etc/default/grub, which the tool needs."""
        m = self.machine
        text = m.read_text(m.etc_default_grub)
        if text is None:
            raise MachineError(f"{m.etc_default_grub}: no such file; {self.tool} needs it")
        return text

    def _sibling(self, name: str) -> str:
        """GRUB's other programs by this tool's prefix (grub2-reboot, grub-editenv, …)."""
        return Path(self.tool).name.replace("mkconfig", name)

    def read_next_boot(self) -> NextBoot:
        m = self.machine
        out = self._output
        return read_grub_next_boot(m, out, (out.parent / "grubenv", m.grub2_env))

    def plan_write(self, current: NextBoot, edit: CmdlineEdit,
                   owned_after: Sequence[str]) -> BootWrite:
        m = self.machine
        old = self._default_grub()
        # The admin's file must carry what pmemd owns even if grub.cfg does (the next
        # grub2-mkconfig, e.g. after a kernel update, would drop it otherwise).
        wanted = CmdlineEdit(add=tuple(owned_after), remove=edit.remove)
        files = file_write(m.etc_default_grub,
                           edit_default_grub(old, wanted, str(m.etc_default_grub)), old)
        if not files and edit.empty:
            return BootWrite()
        out = self._output
        return BootWrite(files=files, commands=((self.tool, "-o", on_target(m, out)),),
                         tool_files=(out, out.with_name(out.name + ".new")))

    def inputs(self) -> tuple[Path, ...]:
        m = self.machine
        out = self._output
        return (m.etc_default_grub, out, out.parent / "grubenv", m.grub2_env,
                m.sys_firmware_efi, m.efi_vendor_dir, *m.efi_vendor_dir.glob("*/grub.cfg"),
                m.grub_trial_dropin, m.grub_trial_script)

    # --- the trial boot ---------------------------------------------------------------------

    def trial_support(self, runner: Runner) -> str | None:
        m = self.machine
        env = self._output.parent / "grubenv"
        missing = trial_script_problem(m) or pending_selection(m, (env, m.grub2_env), TRIAL_ID)
        if missing is not None:
            return missing
        for name in ("reboot", "editenv", "probe"):
            if m.program(self._sibling(name)) is None:
                return f"no {self._sibling(name)} program beside {self.tool}"
        return probe_grubenv(m, runner, env, self._sibling("probe"))

    def _trial_dropin(self, owned: Sequence[str], trial: Sequence[str]) -> str:
        """The trial entry's GRUB_CMDLINE_LINUX: the admin's value, pmemd's options
        replaced by the trial's; read by /etc/grub.d/42_pmemd_trial only."""
        m = self.machine
        shown = str(m.etc_default_grub)
        old = self._default_grub()
        found = find_assignment(old, shown)
        value = trial_args_text(found.value if found is not None else "", owned, trial)
        quoted = "'" + value.replace("'", "'\\''") + "'"
        return (f"# Written by pmemd from {CONFIG_PATH} while a trial boot is armed: the\n"
                "# one-time entry's kernel command line, which only /etc/grub.d/42_pmemd_trial\n"
                "# reads. pmemd removes this file when the trial ends.\n"
                'if [ "${PMEMD_TRIAL:-}" = 1 ]; then\n'
                f"    PMEMD_TRIAL_ID={TRIAL_ID}\n"
                f"    GRUB_CMDLINE_LINUX={quoted}\n"
                "fi\n")

    def plan_trial(self, current: NextBoot, owned: Sequence[str], trial: Sequence[str]
                   ) -> BootWrite:
        del current
        m = self.machine
        out = self._output
        files = file_write(m.grub_trial_dropin, self._trial_dropin(owned, trial),
                           m.read_text(m.grub_trial_dropin), own=True)
        return BootWrite(files=files, commands=((self.tool, "-o", on_target(m, out)),
                                                (self._sibling("reboot"), TRIAL_ID)),
                         tool_files=(out, out.with_name(out.name + ".new"),
                                     out.parent / "grubenv"))

    def plan_end_trial(self, current: NextBoot, owned: Sequence[str],
                       edit: CmdlineEdit) -> BootWrite:
        del current
        m = self.machine
        out = self._output
        env = out.parent / "grubenv"
        old = self._default_grub()
        # on commit the default entry's options become the trial's, in the admin's file
        wanted = CmdlineEdit(add=tuple(owned), remove=edit.remove)
        files = (*file_write(m.etc_default_grub,
                             edit_default_grub(old, wanted, str(m.etc_default_grub)), old),
                 *file_write(m.grub_trial_dropin, None, m.read_text(m.grub_trial_dropin),
                             own=True))
        unset = (self._sibling("editenv"), on_target(m, env), "unset", "next_entry")
        return BootWrite(files=files, commands=((self.tool, "-o", on_target(m, out)), unset),
                         tool_files=(out, out.with_name(out.name + ".new"), env))

    def read_trial(self) -> Cmdline | None:
        out = self._output
        text = self.machine.read_text(out)
        if text is None:
            return None
        entry = find_entry(parse_grub_cfg(text, read_grubenv(
            self.machine, (out.parent / "grubenv", self.machine.grub2_env))), TRIAL_ID)
        return entry.cmdline if entry is not None else None


def probe(machine: Machine) -> Probe:
    kind = BootloaderChoice.GRUB2_MKCONFIG
    tool = next((found for found in map(machine.program, TOOLS) if found is not None), None)
    if tool is None:
        return Probe(kind, None, f"no {' or '.join(TOOLS)} program (SUSE/EL7; Arch, Gentoo)")
    default_grub = machine.etc_default_grub
    text = machine.read_text(default_grub)
    if text is None:
        return Probe(kind, None, f"{tool} exists but {default_grub} does not")
    bls = read_variable(text, str(default_grub), "GRUB_ENABLE_BLSCFG")
    if bls == "true" and machine.loader_entries.is_dir():
        return Probe(kind, None, f"{default_grub} sets GRUB_ENABLE_BLSCFG=true: the entries "
                                 f"are BLS files in {machine.loader_entries} (grubby's job)")
    try:
        output = grub_cfg_output(machine, tool)
    except (NoBootloader, MachineError) as err:
        return Probe(kind, None, str(err))
    return Probe(kind, Grub2Mkconfig(machine, tool),
                 f"{tool} and {default_grub}; output {output.path}: {output.reason}")
