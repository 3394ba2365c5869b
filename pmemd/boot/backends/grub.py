"""Read the next boot from GRUB's generated files on a machine (``grub.cfg`` + ``grubenv``);
shared by the backends whose tool writes ``grub.cfg`` (update-grub, grub2-mkconfig)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pmemd.boot.backends.base import NextBoot
from pmemd.boot.grubcfg import parse_grub_cfg, parse_grubenv, resolve_default
from pmemd.machine.root import Machine


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
