"""Debian and Ubuntu: pmemd keeps its options in its own drop-in,
``/etc/default/grub.d/pmemd.cfg``, which ``grub-mkconfig`` sources after the admin's
``/etc/default/grub``; ``update-grub`` then regenerates ``/boot/grub/grub.cfg``.
The admin's file is never edited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pmemd.boot.backends.base import (
    Backend,
    BootWrite,
    NextBoot,
    Probe,
    file_write,
    on_target,
)
from pmemd.boot.backends.grub import (
    pending_selection,
    read_grub_next_boot,
    read_grubenv,
    trial_script_problem,
)
from pmemd.boot.grubcfg import find_entry, parse_grub_cfg
from pmemd.boot.grubenv import probe_grubenv
from pmemd.core.cmdline import Cmdline, CmdlineEdit, check_writable
from pmemd.core.model import BootloaderChoice
from pmemd.machine.root import CONFIG_PATH, Machine
from pmemd.machine.runner import Runner

TOOL = "update-grub"


TRIAL_ID = "pmemd-trial"  # the trial entry's --id (etc/grub.d/42_pmemd_trial writes it)


def render_dropin(args: Sequence[str], trial: Sequence[str] | None = None) -> str | None:
    """The drop-in carrying ``args`` (``None``: no file at all); with ``trial``, also the
    trial entry's options, which /etc/grub.d/42_pmemd_trial reads (``PMEMD_TRIAL=1``)."""
    if not args and trial is None:
        return None
    header = (
        f"# Written by pmemd from {CONFIG_PATH}: kernel options that reserve emulated\n"
        "# persistent memory (memmap=SIZE!START) and, with 'boot.kaslr: disable', nokaslr.\n"
        f"# pmemd rewrites or removes this file: change {CONFIG_PATH}, then run\n"
        "# 'pmemd reconcile'. grub-mkconfig reads it after /etc/default/grub.\n")
    value = " ".join(check_writable(a) for a in args)
    default = f'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX {value}"\n' if args else ""
    if trial is None:
        return header + default
    tried = " ".join(check_writable(a) for a in trial)
    return (header
            + "# A trial boot is armed: /etc/grub.d/42_pmemd_trial writes a one-time entry\n"
            + "# with these options; the default entries keep the others until it is verified.\n"
            + 'if [ "${PMEMD_TRIAL:-}" = 1 ]; then\n'
            + f"    PMEMD_TRIAL_ID={TRIAL_ID}\n"
            + f'    GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX {tried}"\n'
            + ("else\n    " + default if args else "")
            + "fi\n")


@dataclass(frozen=True)
class UpdateGrub(Backend):
    tool: str = TOOL

    @property
    def kind(self) -> BootloaderChoice:
        return BootloaderChoice.UPDATE_GRUB

    def read_next_boot(self) -> NextBoot:
        m = self.machine
        return read_grub_next_boot(m, m.grub_cfg, (m.grub_env,))

    def plan_write(self, current: NextBoot, edit: CmdlineEdit,
                   owned_after: Sequence[str]) -> BootWrite:
        m = self.machine
        files = file_write(m.grub_dropin, render_dropin(owned_after),
                           m.read_text(m.grub_dropin), own=True)
        if not files and edit.empty:
            return BootWrite()
        # grub-mkconfig writes grub.cfg.new, then renames it: a failure can leave it behind
        return BootWrite(files=files, commands=((self.tool,),),
                         tool_files=(m.grub_cfg, m.grub_cfg.with_name("grub.cfg.new")))

    def inputs(self) -> tuple[Path, ...]:
        m = self.machine
        return (m.grub_cfg, m.grub_env, m.grub_dropin, m.etc_default_grub,
                m.grub_trial_script)

    def trial_support(self, runner: Runner) -> str | None:
        m = self.machine
        missing = trial_script_problem(m) or pending_selection(m, (m.grub_env,), TRIAL_ID)
        if missing is not None:
            return missing
        return probe_grubenv(m, runner, m.grub_env)

    def plan_trial(self, current: NextBoot, owned: Sequence[str], trial: Sequence[str]
                   ) -> BootWrite:
        del current
        m = self.machine
        files = file_write(m.grub_dropin, render_dropin(owned, trial),
                           m.read_text(m.grub_dropin), own=True)
        return BootWrite(files=files, commands=((self.tool,), ("grub-reboot", TRIAL_ID)),
                         tool_files=(m.grub_cfg, m.grub_cfg.with_name("grub.cfg.new"),
                                     m.grub_env))

    def plan_end_trial(self, current: NextBoot, owned: Sequence[str],
                       edit: CmdlineEdit) -> BootWrite:
        del current, edit  # the drop-in is pmemd's alone: written whole
        m = self.machine
        files = file_write(m.grub_dropin, render_dropin(owned), m.read_text(m.grub_dropin),
                           own=True)
        unset = ("grub-editenv", on_target(m, m.grub_env), "unset", "next_entry")
        return BootWrite(files=files, commands=((self.tool,), unset),
                         tool_files=(m.grub_cfg, m.grub_cfg.with_name("grub.cfg.new"),
                                     m.grub_env))

    def read_trial(self) -> Cmdline | None:
        m = self.machine
        text = m.read_text(m.grub_cfg)
        if text is None:
            return None
        entry = find_entry(parse_grub_cfg(text, read_grubenv(m, (m.grub_env,))), TRIAL_ID)
        return entry.cmdline if entry is not None else None


def probe(machine: Machine) -> Probe:
    kind = BootloaderChoice.UPDATE_GRUB
    tool = machine.program(TOOL)
    if tool is None:
        return Probe(kind, None, f"no {TOOL} program (Debian/Ubuntu's grub2-common)")
    if not machine.etc_default_grub.is_file():
        return Probe(kind, None, f"{tool} exists but {machine.etc_default_grub} does not")
    return Probe(kind, UpdateGrub(machine, tool),
                 f"{tool} and {machine.etc_default_grub} (Debian/Ubuntu GRUB); pmemd's "
                 f"options go into {machine.grub_dropin}")
