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
not seen in the boot history (:mod:`pmemd.fastpath.boot_history`; the stamp names the
files). The file is a :mod:`pmemd.fastpath.keyfile`; writing it is
:mod:`pmemd.boot.stamp`'s. This module must import nothing heavy.
"""

from __future__ import annotations

import os
import sys

from pmemd.fastpath import boot_history, keyfile
from pmemd.fastpath.fingerprint import (
    code_files,
    code_identity,
    content,
    hexed,
    identity,
    tree,
    unhexed,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

MAGIC = "pmemd-converged-stamp 2"
# Under the root; the same file as pmemd.machine.root.Machine.converged_stamp (tested).
STAMP = "var/lib/pmemd/converged"
HISTORY_PATHS = 4  # boot-history, boot_id, iomem, /sys/bus/nd/devices
REQUIRED = ("python", "invocation", "code")


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


def _invocation(root: str, config: str) -> dict[str, list[str]]:
    return {"python": [keyfile.python_line()[1]], "invocation": [hexed(root), hexed(config)]}


def _input_line(path: str, *, virtual: Sequence[str], iomem: str, firmware: str,
                regions: str) -> keyfile.Line:
    """How to fingerprint one input: procfs and sysfs files by content (their times say
    nothing), the firmware map as a tree, iomem only for where the kernel image lies."""
    if path == iomem:
        return ("kernel-image", hexed(path), regions)
    if not path.startswith(tuple(f"{v}/" for v in virtual)):
        return ("stat", hexed(path), identity(path))
    if path == firmware:
        return ("tree", hexed(path), tree(path))
    if os.path.isdir(path) or not os.path.exists(path):
        return ("exists", hexed(path), str(int(os.path.exists(path))))
    return ("content", hexed(path), content(path))


def stamp_key(root: str, config: str, *, inputs: Sequence[str], virtual: Sequence[str],
              iomem: str, firmware: str, regions: Sequence[tuple[int, int]]
              ) -> list[keyfile.Line]:
    """The key of a reconcile run as ``reconcile --root ROOT [--config CONFIG]`` (both
    absolute, ``config`` empty when not given) that read ``inputs``; ``virtual`` are the
    roots of procfs and sysfs under the root, ``regions`` the configured ranges."""
    invocation = _invocation(root, config)
    key: list[keyfile.Line] = [("python", *invocation["python"]),
                               ("invocation", *invocation["invocation"])]
    key += [("code", hexed(p), code_identity(p)) for p in code_files()]
    spans = ",".join(f"{start}-{end}" for start, end in regions)
    key += [_input_line(p, virtual=virtual, iomem=iomem, firmware=firmware, regions=spans)
            for p in dict.fromkeys(os.path.abspath(p) for p in inputs)]
    return key


def render_stamp(key: Sequence[keyfile.Line], *, history: Sequence[str], output: str,
                 errors: str) -> str:
    """The stamp: its key, the boot history's files (``HISTORY_PATHS`` of them: the file,
    and the boot id, iomem and nvdimm bus it records a boot from) and what was printed."""
    if len(history) != HISTORY_PATHS:
        raise ValueError(f"history: {HISTORY_PATHS} paths expected")
    data = [("history", *(hexed(p) for p in history)), ("output", hexed(output)),
            ("errors", hexed(errors))]
    return keyfile.render(MAGIC, key, data)


def _printed(data: Sequence[keyfile.Line]) -> tuple[list[str], str, str] | None:
    """``(history paths, output, errors)`` of a stamp's data."""
    found = {name: list(fields) for name, *fields in data}
    if set(found) != {"history", "output", "errors"} or len(found["history"]) != HISTORY_PATHS:
        return None
    return ([unhexed(w) for w in found["history"]], unhexed(found["output"][0]),
            unhexed(found["errors"][0]))


def replay_converged(argv: Sequence[str]) -> int | None:
    """Print what the last converged reconcile printed (its warnings on stderr) and return
    its exit status (0) when none of its inputs changed; ``None``: run the full one."""
    found = invocation(argv)
    if found is None:
        return None
    root, config = found
    data = keyfile.load(os.path.join(root, STAMP), MAGIC, _invocation(root, config), REQUIRED)
    try:
        printed = _printed(data) if data is not None else None
    except (ValueError, IndexError):
        return None
    if printed is None:
        return None
    history, output, errors = printed
    # Every boot is recorded, as the full path records it (once per boot: when it is
    # recorded already, two small reads); when that cannot be done here, the full path
    # runs and says what failed.
    if not boot_history.record_boot(*history):
        return None
    sys.stdout.write(output)
    sys.stdout.flush()
    if errors:
        sys.stderr.write(errors)
    return 0
