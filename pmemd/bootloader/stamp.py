"""The converged stamp: what the last reconcile that found nothing to do had read, so that
the next one — at every boot — can tell in a few milliseconds that nothing changed.

A full reconcile imports the config parser, the planner and every backend; that alone
costs several times an interpreter's start-up. When a reconcile ends converged (nothing
written, nothing to reboot for, nothing to warn about) it records every input it read:
file identities (inode, size, mtime, ctime) for real files, the content of procfs and
sysfs files, where the kernel image may lie (it moves at every boot under KASLR; only its
overlap with a region matters) and the text it printed. :func:`replay_converged` checks all
of them with nothing but ``os``; any difference, any error, any option it does not know
means the full reconcile runs. Like the full reconcile, a replay first records a boot it has
not seen in the boot history (:mod:`pmemd.bootlog`; the stamp names the files). This module
must import nothing heavy.
"""

from __future__ import annotations

import os
import sys

from pmemd.fingerprint import code_files, content, hexed, identity, tree, unhexed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from pmemd.machine import Machine
    from pmemd.model import MemRange

MAGIC = "pmemd-converged-stamp 1"
# Under the root; the same file as pmemd.machine.Machine.converged_stamp (tested).
STAMP = "var/lib/pmemd/converged"
HISTORY_PATHS = 4  # boot-history, boot_id, iomem, /sys/bus/nd/devices
_KERNEL_IMAGE = ("Kernel code", "Kernel rodata", "Kernel data", "Kernel bss")


def _kernel_image_clear(iomem: str, regions: str) -> bool:
    """No ``Kernel code/rodata/data/bss`` line of ``iomem`` overlaps a region."""
    ranges = [tuple(int(n) for n in r.split("-")) for r in regions.split(",") if r]
    try:
        with open(iomem, encoding="ascii", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return not ranges
    for line in lines:
        span, _, name = line.strip().partition(" : ")
        if name not in _KERNEL_IMAGE:
            continue
        first, _, last = span.partition("-")
        start, end = int(first, 16), int(last, 16) + 1
        if any(start < r_end and r_start < end for r_start, r_end in ranges):
            return False
    return True


def invocation(argv: Sequence[str]) -> tuple[str, str] | None:
    """``(root, config)`` of a plain ``reconcile [--root DIR] [--config FILE]``; ``None`` for
    anything else (dry runs, JSON, verbose, other commands take the full path)."""
    if not argv or argv[0] != "reconcile":
        return None
    values = {"--root": "/", "--config": ""}
    rest = list(argv[1:])
    while rest:
        option = rest.pop(0)
        if "=" in option:
            option, value = option.split("=", 1)
        elif rest:
            value = rest.pop(0)
        else:
            return None
        if option not in values:
            return None
        values[option] = value
    root, config = values["--root"], values["--config"]
    return os.path.abspath(root), os.path.abspath(config) if config else ""


def _check(line: str, root: str, config: str) -> bool:
    kind, _, rest = line.partition(" ")
    name, _, value = rest.partition(" ")
    if kind == "python":
        return rest == str(sys.hexversion)
    if kind == "invocation":
        return name == hexed(root) and value == hexed(config)
    if kind in ("output", "errors", "history"):
        return True
    path = unhexed(name)
    if kind == "stat":
        return identity(path) == value
    if kind == "content":
        return content(path) == value
    if kind == "tree":
        return tree(path) == value
    if kind == "exists":
        return str(int(os.path.exists(path))) == value
    if kind == "kernel-image":
        return _kernel_image_clear(path, value)
    return False


def replay_converged(argv: Sequence[str]) -> int | None:
    """Print what the last converged reconcile printed (its warnings on stderr) and return
    its exit status (0) when none of its inputs changed; ``None``: run the full one."""
    found = invocation(argv)
    if found is None:
        return None
    root, config = found
    try:
        with open(os.path.join(root, STAMP), encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except (OSError, ValueError):
        return None
    if not lines or lines[0] != MAGIC:
        return None
    output = errors = None
    history: list[str] = []
    try:
        for line in lines[1:]:
            if not _check(line, root, config):
                return None
            if line.startswith("output "):
                output = unhexed(line[len("output ") :])
            elif line.startswith("errors "):
                errors = unhexed(line[len("errors ") :])
            elif line.startswith("history "):
                history = [unhexed(word) for word in line.split(" ")[1:]]
    except (ValueError, OSError):
        return None
    if output is None or len(history) != HISTORY_PATHS:
        return None
    if not _record_boot(*history):
        return None
    sys.stdout.write(output)
    sys.stdout.flush()
    if errors:
        sys.stderr.write(errors)
    _keep_generator_cache(root)
    return 0


def _record_boot(history: str, boot_id: str, iomem: str, nd_devices: str) -> bool:
    """This boot in the boot history, as the full reconcile records it (once per boot: the
    check is two small reads); ``False``: let the full path do it (and say what failed)."""
    from pmemd.bootlog import record_boot

    return record_boot(history, boot_id, iomem, nd_devices)


def _keep_generator_cache(root: str) -> None:
    """Make the generator's cache again when it is missing or stale (a new config, a pmemd
    upgrade): checking costs a read and a few stats; only making it imports the full code."""
    from pmemd import gencache

    if gencache.cache_is_current(root):
        return
    from pathlib import Path

    from pmemd.machine import Machine

    gencache.refresh_generator_cache(Machine(Path(root)))


def write_stamp(machine: Machine, root_arg: str, config_arg: str | None, *,
                inputs: Sequence[Path], regions: Sequence[MemRange], output: str,
                errors: str = "", history: Sequence[Path]) -> None:
    """Record ``inputs`` (and the code and invocation) after a converged reconcile run as
    ``reconcile --root ROOT_ARG [--config CONFIG_ARG]``. ``history``: the boot history's
    file, and the boot id, iomem and nvdimm bus it records this boot from (the fast path
    records every new boot as the full path does)."""
    from pmemd.atomic import write_atomic

    root = os.path.abspath(root_arg)
    config = os.path.abspath(config_arg) if config_arg else ""
    virtual = tuple(f"{p}/" for p in machine.virtual_roots)
    lines = [MAGIC, f"python {sys.hexversion}", f"invocation {hexed(root)} {hexed(config)}"]
    lines += [f"stat {hexed(p)} {identity(p)}" for p in code_files()]
    for raw in dict.fromkeys(os.path.abspath(p) for p in inputs):
        if raw == os.path.abspath(machine.iomem):
            ranges = ",".join(f"{r.start}-{r.end}" for r in regions)
            lines.append(f"kernel-image {hexed(raw)} {ranges}")
        elif not raw.startswith(virtual):
            lines.append(f"stat {hexed(raw)} {identity(raw)}")
        elif raw == os.path.abspath(machine.firmware_memmap):
            lines.append(f"tree {hexed(raw)} {tree(raw)}")
        elif os.path.isdir(raw) or not os.path.exists(raw):
            lines.append(f"exists {hexed(raw)} {int(os.path.exists(raw))}")
        else:
            lines.append(f"content {hexed(raw)} {content(raw)}")
    if len(history) != HISTORY_PATHS:
        raise ValueError(f"history: {HISTORY_PATHS} paths expected")
    lines.append("history " + " ".join(hexed(str(p)) for p in history))
    lines.append(f"output {hexed(output)}")
    lines.append(f"errors {hexed(errors)}")
    write_atomic(machine.converged_stamp, "\n".join(lines) + "\n", mode=0o644)


def remove_stamp(machine: Machine) -> None:
    import contextlib

    with contextlib.suppress(FileNotFoundError):
        os.unlink(machine.converged_stamp)
