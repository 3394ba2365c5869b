"""(pure) Where each region lies: its offset, or the highest aligned free range of usable
RAM in the firmware map that holds it.

Placement reads only the config and the firmware map (never this boot's edited map), so the
generator, reconcile, ``pmemd plan`` and the service place an automatic region identically
on every boot."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pmemd.core.e820 import E820Entry, MemoryMap
from pmemd.core.model import Config, Region
from pmemd.core.ranges import MemRange, align_down, aligned_parts, subtract
from pmemd.core.sizes import format_bytes, render_size
from pmemd.errors import Problem


class Placement(StrEnum):
    CONFIG = "config"  # the config gave the offset
    AUTO = "auto"  # pmemd chose it


@dataclass(frozen=True)
class Placed:
    region: Region
    range: MemRange
    placement: Placement


def place_regions(config: Config, memory: MemoryMap) -> tuple[tuple[Placed, ...], list[Problem]]:
    """Where each region lies. Depends only on the config and the firmware map, so every
    caller (reconcile, generator, service) places auto regions identically on every boot."""
    problems: list[Problem] = []
    usable = memory.usable
    alignment = config.memory.alignment
    placed: list[Placed] = []
    for region in config.regions:
        if region.offset is None:
            continue
        rng = MemRange.sized(region.offset, region.size)
        if not any(r.contains(rng) for r in usable):
            problems.append(config.source.problem(
                f"regions[{region.index}].offset",
                f"region {region.name!r} ({rng.describe()}) is not inside usable RAM: "
                + _why_not_usable(rng, memory), region.index))
        placed.append(Placed(region, rng, Placement.CONFIG))
    for region in config.regions:
        if region.offset is not None:
            continue
        free = subtract(usable, (p.range for p in placed))
        start = _highest_start(free, region.size, alignment)
        if start is None:
            problems.append(config.source.problem(
                f"regions[{region.index}].size",
                f"no free usable RAM can hold region {region.name!r} "
                f"({format_bytes(region.size)} aligned to {render_size(alignment)}); "
                + _largest_free_text(free, alignment), region.index))
            continue
        placed.append(Placed(region, MemRange.sized(start, region.size), Placement.AUTO))
    ordered = sorted(placed, key=lambda p: p.range.start)
    return tuple(ordered), problems


def _highest_start(free: Iterable[MemRange], size: int, alignment: int) -> int | None:
    best = None
    for rng in free:
        start = align_down(rng.end - size, alignment)
        if rng.end - size >= 0 and start >= rng.start and (best is None or start > best):
            best = start
    return best


def _largest_free_text(free: Sequence[MemRange], alignment: int) -> str:
    parts = aligned_parts(free, alignment)
    if not parts:
        return "no aligned free space is left"
    return f"the largest aligned free range is {parts[0].describe()}"


def _why_not_usable(rng: MemRange, memory: MemoryMap) -> str:
    reasons: list[str] = []
    for gap in subtract([rng], memory.usable):
        reasons.extend(_describe_entry(e) for e in memory.firmware if e.range.overlaps(gap))
        reasons.extend(f"no memory at all at {hole}"
                       for hole in subtract([gap], (e.range for e in memory.firmware)))
    end_of_ram = max((e.range.end for e in memory.firmware), default=0)
    text = "it overlaps " + "; ".join(dict.fromkeys(reasons))
    if rng.end > end_of_ram:
        text += f" (the memory map ends at {end_of_ram - 1:#x})"
    return text


def _describe_entry(entry: E820Entry) -> str:
    return f"{entry.label or entry.kind.value} {entry.range}"
