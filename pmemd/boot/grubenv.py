"""Whether GRUB can clear a one-time selection at boot: it writes ``next_entry=`` back to
its environment block (``grubenv``) before booting the entry, and it can write only to a
plain disk with a filesystem it has write support for. Where it cannot, a trial entry
selected with ``grub-reboot`` would stay selected: a trial that panics would be booted
again and again. The rule is Debian's own (``/etc/grub.d/00_header`` disables recordfail
the same way), with encrypted disks added (GRUB has no write support through them).

The answer comes from ``grub-probe`` on the directory holding grubenv, run on the machine
through the runner."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pmemd.boot.backends.base import on_target, tool_argv
from pmemd.errors import CommandError
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner

# grub-probe --target=abstraction: layers GRUB reads through but cannot write through
NO_WRITE_ABSTRACTIONS = frozenset({"diskfilter", "lvm", "mdraid09", "mdraid09_be", "mdraid1x",
                                   "raid5rec", "raid6rec", "cryptodisk", "luks", "luks2",
                                   "geli"})
# grub-probe --target=fs: filesystems GRUB cannot write its environment block on
NO_WRITE_FILESYSTEMS = frozenset({"btrfs", "cpiofs", "newc", "odc", "romfs", "squash4",
                                  "tarfs", "zfs"})


def grubenv_problem(abstractions: Sequence[str], fs: str) -> str | None:
    """(pure) Why GRUB cannot write its environment block there, or None."""
    layers = [a for a in abstractions if a in NO_WRITE_ABSTRACTIONS]
    if layers:
        return (f"GRUB cannot write its environment block through {' and '.join(layers)}, "
                "so a one-time boot entry would not be cleared at boot")
    if fs in NO_WRITE_FILESYSTEMS:
        return (f"GRUB cannot write its environment block on {fs}, so a one-time boot "
                "entry would not be cleared at boot")
    return None


def probe_grubenv(machine: Machine, runner: Runner, grubenv: Path,
                  probe: str = "grub-probe") -> str | None:
    """``grub-probe`` on the directory of ``grubenv``: None when GRUB can write it there,
    else why not (including grub-probe failing: no trial where it cannot be checked)."""
    directory = on_target(machine, grubenv.parent)
    found = []
    for target in ("abstraction", "fs"):
        try:
            done = runner.run(tool_argv(machine, [probe, f"--target={target}",
                                                  directory]), mutating=False, timeout=60)
        except CommandError as err:
            return f"{probe} could not tell what {directory} is on: {err}"
        found.append(done.stdout.split())
    abstractions, fs = found
    return grubenv_problem(abstractions, fs[0] if fs else "")
