"""Read the next boot from GRUB's generated files on a machine (``grub.cfg`` + ``grubenv``);
shared by the backends whose tool writes ``grub.cfg`` (update-grub, grub2-mkconfig)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pmemd.boot.backends.base import NextBoot, on_target
from pmemd.boot.grubcfg import parse_grub_cfg, parse_grubenv, resolve_default
from pmemd.machine.root import Machine


def trial_script_problem(machine: Machine) -> str | None:
    """Why GRUB cannot write a trial entry here: pmemd's /etc/grub.d script is missing."""
    script = machine.grub_trial_script
    if script.is_file() and os.access(script, os.X_OK):
        return None
    return (f"{on_target(machine, script)}, which writes the trial entry, is not installed "
            "or not executable (pmemd's package installs it)")


def pending_selection(machine: Machine, envs: Sequence[Path], trial_id: str) -> str | None:
    """Why a trial would take someone else's one-time boot away: ``next_entry`` in grubenv
    already selects another entry (the admin's ``grub-reboot``)."""
    selected = read_grubenv(machine, envs).get("next_entry", "")
    if not selected or selected == trial_id:
        return None
    return (f"the next boot is already selected once (next_entry={selected} in grubenv, "
            "set with grub-reboot): pmemd does not replace it")


def read_grubenv(machine: Machine, candidates: Sequence[Path]) -> dict[str, str]:
    """The first existing environment block of ``candidates`` (empty when none)."""
    for path in candidates:
        text = machine.read_text(path)
        if text is not None:
            return parse_grubenv(text)
    return {}


def read_grub_next_boot(machine: Machine, cfg: Path, envs: Sequence[Path]) -> NextBoot:
    text = machine.read_text(cfg)
    if text is None:
        return NextBoot(None, str(cfg), note="not generated yet")
    env = read_grubenv(machine, envs)
    config = parse_grub_cfg(text, env)
    if config.blscfg and not config.entries:
        return NextBoot(None, str(cfg), note="its entries come from BLS files (blscfg), "
                        "which this backend does not write; use boot.bootloader: grubby")
    entry, how = resolve_default(config, env)
    if entry is None:
        return NextBoot(None, str(cfg), note=how)
    if entry.submenu or entry.cmdline is None:
        return NextBoot(None, str(cfg), entry.title, note=f"{how}; it boots no Linux kernel")
    return NextBoot(entry.cmdline, str(cfg), entry.title, entry.kernel, how)
