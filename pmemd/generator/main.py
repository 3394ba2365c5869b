"""``pmemd-generator NORMAL [EARLY LATE]``: the systemd generator (systemd.generator(7)).

systemd runs it on every boot and daemon-reload, before any unit starts. From
``/etc/pmemd.yaml`` alone it writes, into NORMAL, the units of every region with a
filesystem (see :mod:`pmemd.core.units`). It reads the firmware memory map only to place
regions without an offset, talks to no service, writes nowhere but NORMAL, and never
fails the boot: a problem is logged ("…, ignoring") and only the part it touches is
left out. ``--root DIR`` reads the machine under DIR (tests).

It is on the boot's critical path. First it tries the cache of its own output
(:mod:`pmemd.fastpath.generator_cache`: nothing but ``os`` is imported for that); only on
a miss does it import what computing the output needs (:mod:`pmemd.generator.generate`).
"""

from __future__ import annotations

import os
import sys

from pmemd.fastpath.generator_cache import replay_cached
from pmemd.fastpath.generator_runtime import USAGE, open_log, parse_arguments, write_outputs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 whatever happens (2 only for bad usage): a generator that fails is a
    boot that reports a failure, for the sake of persistent memory."""
    try:
        return _generate(sys.argv[1:] if argv is None else argv)
    except Exception as err:  # every known problem is logged below; this is a bug's
        sys.stderr.write(f"pmemd-generator: unexpected error, stopped: "
                         f"{type(err).__name__}: {err}\n")
        return 0


def _generate(args: Sequence[str]) -> int:
    replayed = replay_cached(args)
    if replayed is not None:
        return replayed
    parsed = parse_arguments(args)
    if parsed is None:
        sys.stderr.write(USAGE)
        return 2
    from pathlib import Path

    from pmemd.generator.generate import generate
    from pmemd.machine.root import Machine

    root, dirs = parsed
    machine = Machine(Path(root))
    log = open_log(str(machine.root), str(machine.kmsg))
    try:
        files = generate(machine, log).files
    except Exception as err:  # never fail the boot over pmem; say what went wrong
        log.error(f"unexpected error, generating nothing: {type(err).__name__}: {err}")
        return 0
    outputs = [(f.path, f.text, f.link) for f in files]
    write_outputs(os.fspath(dirs[0]), outputs, log)  # what it could not write, it logged
    return 0
