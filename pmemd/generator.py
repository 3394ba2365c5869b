"""``pmemd-generator NORMAL [EARLY LATE]``: the systemd generator (systemd.generator(7)).

systemd runs it on every boot and daemon-reload, before any unit starts. From
``/etc/pmemd.yaml`` alone it writes, into NORMAL, the units of every region with a
filesystem (see :mod:`pmemd.units`). It reads the firmware memory map only to place
regions without an offset, talks to no service, writes nowhere but NORMAL, and never
fails the boot: a problem is logged ("…, ignoring") and only the part it touches is
left out. ``--root DIR`` reads the machine under DIR (tests).

It is on the boot's critical path. First it tries the cache of its own output
(:mod:`pmemd.gencache`: nothing but ``os`` is imported for that); on a miss this module
computes the output, importing only what that needs (no argparse, logging or json, and
the planner only when a region has no offset). Module level imports stay light.
"""

from __future__ import annotations

import os
import sys

from pmemd.gencache import (
    CONFIG_READ_LIMIT,
    GENERATOR,
    USAGE,
    Log,
    in_initrd,
    open_log,
    parse_arguments,
    replay_cached,
    write_outputs,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from pmemd.errors import Problem
    from pmemd.machine import Machine
    from pmemd.model import Config, MemRange
    from pmemd.units import GeneratedFile

__all__ = ["GENERATOR", "USAGE", "Log", "generate", "generate_from", "main"]

FIRMWARE = "firmware"  # what generate_from records in ``used`` when it read the memory map


def _one_line(problem: Problem) -> str:
    from pmemd.errors import Problem

    return Problem(problem.message, problem.key, problem.location).render()


def _place(machine: Machine, config: Config, log: Log,
           used: set[str]) -> dict[str, MemRange]:
    """Each region's physical range: its offset, or where the planner places it (from the
    firmware map, exactly as `pmemd plan` and reconcile place it)."""
    from pmemd.model import MemRange

    placed = {r.name: MemRange.sized(r.offset, r.size) for r in config.regions
              if r.offset is not None}
    auto = [r.name for r in config.regions if r.offset is None]
    if not auto:
        return placed
    from pmemd.errors import MachineError
    from pmemd.facts import read_firmware_map
    from pmemd.plan import place_regions

    used.add(FIRMWARE)
    try:
        memory = read_firmware_map(machine)
    except MachineError as err:
        log.error(f"{err}; cannot place regions without an offset ({', '.join(auto)}), "
                  "ignoring them")
        return placed
    where, problems = place_regions(config, memory)
    for problem in problems:
        log.error(f"{_one_line(problem)}, ignoring")
    return {p.region.name: p.range for p in where}


def generate_from(machine: Machine, data: bytes | None, log: Log,
                  used: set[str] | None = None) -> list[GeneratedFile]:
    """(pure apart from reading the firmware map) The files to write for the config bytes
    ``data`` (``None``: no config). ``used`` gets ``firmware`` when the output depended on
    the firmware memory map (the generator's cache keys on it then)."""
    if data is None:
        return []  # nothing configured
    from pmemd.machine import CONFIG_PATH
    from pmemd.salvage import salvage_config
    from pmemd.units import UnitError, render_region_units

    salvaged = salvage_config(data, CONFIG_PATH)
    dropped = set(salvaged.dropped)
    for problem in salvaged.problems:
        index = problem.key.partition("]")[0] + "]" if problem.key.startswith("regions[") else ""
        what = index if index and salvaged.config is not None else "the whole config"
        log.error(f"{_one_line(problem)}, ignoring {what}")
    config = salvaged.config
    if config is None:
        return []
    for name in salvaged.dropped_auto:
        bad = ", ".join(f"regions[{i}]" for i in sorted(dropped))
        log.error(f"{CONFIG_PATH}: region {name} has no offset and is placed only from a valid "
                  f"config ({bad} have problems), ignoring it")
    with_fs = [r for r in config.regions if r.filesystem is not None]
    ranges = _place(machine, config, log, used if used is not None else set()) \
        if with_fs else {}
    files: list[GeneratedFile] = []
    for region in with_fs:
        rng = ranges.get(region.name)
        if rng is None:
            continue  # not placed: logged above
        try:
            files.extend(render_region_units(region, rng))
        except UnitError as err:
            log.error(f"{CONFIG_PATH}: region {region.name}: {err}, ignoring")
    return files


def generate(machine: Machine, log: Log) -> list[GeneratedFile]:
    """The files to write for the machine's config (pure apart from reading it)."""
    if in_initrd(str(machine.initrd_release)):
        return []  # pmem filesystems belong to the booted system, not the initrd
    try:
        with machine.config.open("rb") as handle:
            data = handle.read(CONFIG_READ_LIMIT)
    except FileNotFoundError:
        return []  # nothing configured
    except OSError as err:
        from pmemd.machine import CONFIG_PATH

        log.error(f"{CONFIG_PATH}: {err.strerror}, ignoring")
        return []
    return generate_from(machine, data, log)


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    replayed = replay_cached(args)
    if replayed is not None:
        return replayed
    parsed = parse_arguments(args)
    if parsed is None:
        sys.stderr.write(USAGE)
        return 2
    from pathlib import Path

    from pmemd.machine import Machine

    root, dirs = parsed
    machine = Machine(Path(root))
    log = open_log(str(machine.root), str(machine.kmsg))
    try:
        files = generate(machine, log)
    except Exception as err:  # never fail the boot over pmem; say what went wrong
        log.error(f"unexpected error, generating nothing: {type(err).__name__}: {err}")
        return 0
    outputs = [(f.path, f.text, f.link) for f in files]
    return 0 if write_outputs(os.fspath(dirs[0]), outputs, log) else 1
