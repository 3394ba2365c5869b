"""The generator's output computed in full: the config (read leniently, as systemd's
generators read fstab), each region placed, and its units rendered by
:mod:`pmemd.core.units`. A problem is logged ("…, ignoring") and only the part it touches
is left out; nothing here fails the boot.

It is imported only on a cache miss; it reads the firmware memory map only to place
regions without an offset, and the planner's placement only then.
"""

from __future__ import annotations

from dataclasses import dataclass

from pmemd.core.config import ParsedConfig, parse_config
from pmemd.core.model import Config
from pmemd.core.ranges import MemRange
from pmemd.core.units import (
    GeneratedFile,
    RegionUnits,
    UnitError,
    mode_unit_name,
    needs_mode_unit,
    region_unit_names,
    render_mode_unit,
    render_region_units,
    render_trial_order,
)
from pmemd.core.yamltree import MAX_CONFIG_BYTES
from pmemd.errors import PROBLEMS_SHOWN, FileMissing, UnreadableFile
from pmemd.fastpath.generator_runtime import Log
from pmemd.fastpath.keyfile import in_initrd
from pmemd.machine.files import read_regular
from pmemd.machine.root import CONFIG_PATH, TARGET, Machine


@dataclass(frozen=True)
class Generated:
    """The generator's output, and whether it depended on the firmware memory map (the
    generator's cache then keys on the map too)."""

    files: tuple[GeneratedFile, ...] = ()
    read_firmware: bool = False


def _log_problems(parsed: ParsedConfig, log: Log) -> None:
    """The config's problems, and what each costs: one region or the whole config. The
    first PROBLEMS_SHOWN in full, the others counted in one line (a config with a thousand
    problems does not flood the boot's journal)."""
    for problem in parsed.problems[:PROBLEMS_SHOWN]:
        index = problem.key.partition("]")[0] + "]" if problem.key.startswith("regions[") else ""
        what = index if index and parsed.usable is not None else "the whole config"
        log.error(f"{problem.one_line()}, ignoring {what}")
    more = len(parsed.problems) - PROBLEMS_SHOWN
    if more > 0:
        what = "the regions they are in" if parsed.usable is not None else "the whole config"
        log.error(f"{CONFIG_PATH}: {more} more problems (pmemd validate shows them), "
                  f"ignoring {what}")
    bad = ", ".join(f"regions[{i}]" for i in parsed.dropped)
    for name in parsed.dropped_auto:
        log.error(f"{CONFIG_PATH}: region {name} has no offset and is placed only from a valid "
                  f"config ({bad} have problems), ignoring it")


def _place(machine: Machine, config: Config, log: Log) -> dict[str, MemRange]:
    """Each region's physical range: its offset, or where the planner places it (from the
    firmware map, exactly as `pmemd plan` and reconcile place it)."""
    placed = {r.name: MemRange.sized(r.offset, r.size) for r in config.regions
              if r.offset is not None}
    auto = [r.name for r in config.regions if r.offset is None]
    if not auto:
        return placed
    from pmemd.core.placement import place_regions
    from pmemd.errors import MachineError
    from pmemd.machine.memory import read_firmware_map

    try:
        memory = read_firmware_map(machine)
    except MachineError as err:
        log.error(f"{err}; cannot place regions without an offset ({', '.join(auto)}), "
                  "ignoring them")
        return placed
    where, problems = place_regions(config, memory)
    for problem in problems:
        log.error(f"{problem.one_line()}, ignoring")
    return {p.region.name: p.range for p in where}


def generate_from(machine: Machine, data: bytes | None, log: Log) -> Generated:
    """The files to write for the config bytes ``data`` (``None``: no config)."""
    if data is None:
        return Generated()  # nothing configured
    parsed = parse_config(data, CONFIG_PATH)
    _log_problems(parsed, log)
    config = parsed.usable
    if config is None:
        return Generated()
    return generate_config(machine, config, log)


def generate_config(machine: Machine, config: Config, log: Log) -> Generated:
    """The files to write for a (usable) config."""
    with_fs = [r for r in config.regions if r.filesystem is not None and r.block]
    with_units = [r for r in config.regions if r in with_fs or needs_mode_unit(r)]
    ranges = _place(machine, config, log) if with_units else {}
    files: list[GeneratedFile] = []
    names: list[RegionUnits] = []
    modes: list[str] = []
    for region in with_units:
        rng = ranges.get(region.name)
        if rng is None:
            continue  # not placed: logged above
        try:
            files.extend(render_region_units(region, rng, TARGET) if region in with_fs else ())
            files.extend(render_mode_unit(region, rng, TARGET))
        except UnitError as err:
            log.error(f"{CONFIG_PATH}: region {region.name}: {err}, ignoring")
            continue
        if region in with_fs:
            names.append(region_unit_names(region, rng, TARGET))
        if needs_mode_unit(region):
            modes.append(mode_unit_name(rng))
    if names or modes:
        files.append(render_trial_order(names, TARGET, modes))
    # _place read the map when a region (with units or not: it takes room too) has no
    # offset.
    auto = bool(with_units) and any(r.offset is None for r in config.regions)
    return Generated(tuple(files), read_firmware=auto)


def read_generator_config(machine: Machine) -> bytes | None:
    """As much of the config as the generator reads; ``None`` when there is none.
    :class:`UnreadableFile` when it cannot be read (or is no regular file, or too large)."""
    try:
        return read_regular(machine.config, MAX_CONFIG_BYTES)
    except FileMissing:
        return None


def generate(machine: Machine, log: Log) -> Generated:
    """The files to write for the machine's config."""
    if in_initrd(str(machine.initrd_release)):
        return Generated()  # pmem filesystems belong to the booted system, not the initrd
    try:
        data = read_generator_config(machine)
    except UnreadableFile as err:
        log.error(f"{CONFIG_PATH}: {err.reason}, ignoring")
        return Generated()
    return generate_from(machine, data, log)
