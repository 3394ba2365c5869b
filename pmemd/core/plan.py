"""(pure) Config + machine facts → :class:`Plan`: where each region goes, what the command
line must gain or lose, whether a reboot is needed, how each region's device is, and what
the user should know.

The plan is judged against the next boot's command line when the bootloader's is known
(``next_boot``), else against the running one; pmemd only ever removes what its state says
it wrote (``owned``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pmemd.core.cmdline import Cmdline
from pmemd.core.cmdline_length import cmdline_length_problems
from pmemd.core.devices import DeviceState, PmemDevice, RegionDevice, match_region
from pmemd.core.devices import unmatched_devices as devices_elsewhere
from pmemd.core.facts import MachineFacts
from pmemd.core.findings import (
    NOKASLR,
    Finding,
    ForeignMemmap,
    filesystem_findings,
    firmware_map_findings,
    foreign_findings,
    kaslr_findings,
    kernel_image_findings,
    kernel_support_findings,
)
from pmemd.core.history import FsRecord
from pmemd.core.memmap import (
    MemmapArg,
    MemmapItem,
    MemmapKind,
    explain_item,
    memmap_args,
    render_memmap_arg,
    reserved_range,
    reserved_ranges,
)
from pmemd.core.model import Config, KaslrPolicy, Region
from pmemd.core.modes import given_back, system_ram_problems
from pmemd.core.placement import Placed, Placement, place_regions
from pmemd.core.pmd import apply_pmd_check
from pmemd.core.ranges import MemRange
from pmemd.core.sizes import format_bytes, format_compared, render_size
from pmemd.errors import Problem


class PlanState(StrEnum):
    CONVERGED = "converged"
    CHANGES_PENDING = "changes-pending"
    REBOOT_REQUIRED = "reboot-required"
    DEGRADED = "degraded"
    INVALID_CONFIG = "invalid-config"


@dataclass(frozen=True)
class PlacedRegion:
    region: Region
    range: MemRange
    placement: Placement
    argument: str  # the canonical memmap= argument
    on_running_cmdline: bool


class ChangeAction(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    KEEP = "keep"


@dataclass(frozen=True)
class CmdlineChange:
    action: ChangeAction
    argument: str
    reason: str


@dataclass(frozen=True)
class Plan:
    state: PlanState
    regions: tuple[PlacedRegion, ...]
    desired_args: tuple[str, ...]
    running_args: tuple[str, ...]
    changes: tuple[CmdlineChange, ...]
    foreign: tuple[ForeignMemmap, ...]
    warnings: tuple[Finding, ...]
    problems: tuple[Problem, ...]
    reboot_required: bool
    memory_total: int  # usable RAM in the firmware map
    memory_left: int  # what the regions leave to the system
    devices: tuple[RegionDevice, ...] = ()  # per region, when the devices were read
    unmatched_devices: tuple[PmemDevice, ...] = ()  # pmem devices at no configured address
    filesystems: tuple[FsRecord, ...] = ()  # what make-filesystem did on this boot, per region


@dataclass(frozen=True)
class _Found:
    """One ``memmap=`` item on a command line, with the argument it is part of."""

    arg: MemmapArg
    item: MemmapItem


def _found(cmdline: Cmdline) -> list[_Found]:
    return [_Found(arg, item) for arg in memmap_args(cmdline) for item in arg.items]


def plan(config: Config, facts: MachineFacts, *, owned: Iterable[str] = (),
         next_boot: Cmdline | None = None) -> Plan:
    """The plan for ``config`` on a machine.

    ``owned`` lists the arguments pmemd wrote earlier (from its state): only those may be
    removed. ``next_boot`` is the bootloader's configured command line when known; without
    it, changes are judged against the running command line.
    """
    owned_args = frozenset(owned)
    placed, problems = place_regions(config, facts.memory)
    running = reserved_ranges(facts.cmdline)
    regions = tuple(PlacedRegion(p.region, p.range, p.placement, render_memmap_arg(p.range),
                                 p.range in running) for p in placed)
    target = next_boot if next_boot is not None else facts.cmdline
    changes, foreign, conflicts = _changes(config, regions, target, owned_args)
    problems += conflicts
    problems += _memory_problems(config, facts, placed)
    problems += system_ram_problems(config, [(p.region, p.range) for p in placed],
                                    facts.memory_block)
    problems += cmdline_length_problems(
        config, facts, target, add=[c.argument for c in changes if c.action is ChangeAction.ADD],
        remove={c.argument for c in changes if c.action is ChangeAction.REMOVE})
    filesystems = _filesystems_this_boot(regions, facts)
    warnings = [*firmware_map_findings(facts.memory),
                *foreign_findings(foreign),
                *kaslr_findings(config, facts, placed, len(foreign)),
                *kernel_image_findings(facts.memory, placed),
                *kernel_support_findings(config, facts.kernel),
                *filesystem_findings(filesystems)]
    pending = any(c.action is not ChangeAction.KEEP for c in changes)
    reboot_required = pending or _running_differs(config, regions, facts.cmdline, owned_args)
    devices, unmatched = _device_statuses(regions, facts)
    usable = facts.memory.usable_total
    return Plan(
        state=_state(problems, pending, reboot_required, devices),
        regions=regions,
        desired_args=_desired_args(config, regions),
        running_args=tuple(a.text for a in memmap_args(facts.cmdline)),
        changes=changes,
        foreign=foreign,
        warnings=tuple(warnings),
        problems=tuple(problems),
        reboot_required=reboot_required,
        memory_total=usable,
        memory_left=usable - _taken(facts, placed),
        devices=devices,
        unmatched_devices=unmatched,
        filesystems=filesystems,
    )


def _desired_args(config: Config, regions: Sequence[PlacedRegion]) -> tuple[str, ...]:
    nokaslr = (NOKASLR,) if config.boot.kaslr is KaslrPolicy.DISABLE else ()
    return (*(r.argument for r in regions), *nokaslr)


def _changes(config: Config, regions: Sequence[PlacedRegion], target: Cmdline,
             owned: frozenset[str]
             ) -> tuple[tuple[CmdlineChange, ...], tuple[ForeignMemmap, ...], list[Problem]]:
    """What ``target`` must gain (each region's option it lacks) and lose (pmemd's own
    options no longer wanted); the options pmemd leaves alone, and those that conflict
    with a region."""
    present = reserved_ranges(target)
    changes = [CmdlineChange(ChangeAction.KEEP, r.argument, f"region {r.region.name!r}")
               if r.range in present else CmdlineChange(ChangeAction.ADD, r.argument,
                                                        _add_reason(r))
               for r in regions]
    wanted = {r.range for r in regions}
    foreign: list[ForeignMemmap] = []
    conflicts: list[Problem] = []
    for found in _found(target):
        if reserved_range(found.item) in wanted:
            continue
        if found.arg.text in owned:
            removal = CmdlineChange(ChangeAction.REMOVE, found.arg.text,
                                    "written by pmemd; no longer in the config")
            if removal not in changes:
                changes.append(removal)
            continue
        foreign.append(ForeignMemmap(found.arg.text, found.item, explain_item(found.item)))
        conflicts.extend(_conflicts(config, found, regions))
    changes.extend(_kaslr_changes(config, target, owned))
    return tuple(changes), tuple(foreign), conflicts


def _kaslr_changes(config: Config, target: Cmdline, owned: frozenset[str]
                   ) -> list[CmdlineChange]:
    """``nokaslr`` on for ``boot.kaslr: disable``; off again once the config no longer asks
    for it, when pmemd is the one that put it there."""
    wanted = config.boot.kaslr is KaslrPolicy.DISABLE
    if wanted and not target.has_flag(NOKASLR):
        return [CmdlineChange(ChangeAction.ADD, NOKASLR, "boot.kaslr: disable")]
    if not wanted and NOKASLR in owned and target.has_flag(NOKASLR):
        return [CmdlineChange(ChangeAction.REMOVE, NOKASLR,
                              "written by pmemd; boot.kaslr is no longer 'disable'")]
    return []


def _running_differs(config: Config, regions: Sequence[PlacedRegion], running: Cmdline,
                     owned: frozenset[str]) -> bool:
    """The running kernel lacks a region's option or ``nokaslr``, or still carries an
    option pmemd wrote and no longer wants."""
    wanted = {r.range for r in regions}
    return (any(not r.on_running_cmdline for r in regions)
            or (config.boot.kaslr is KaslrPolicy.DISABLE and not running.has_flag(NOKASLR))
            or any(f.arg.text in owned and f.item.range not in wanted
                   for f in _found(running)))


def _memory_problems(config: Config, facts: MachineFacts, placed: Sequence[Placed]
                     ) -> list[Problem]:
    reserved = _taken(facts, placed)
    usable = facts.memory.usable_total
    left = usable - reserved
    if not config.regions or left >= config.memory.min_system_ram:
        return []
    shown_left, shown_min = format_compared(max(left, 0), config.memory.min_system_ram)
    return [config.source.problem(
        "regions",
        f"the regions take {format_bytes(reserved)} of {format_bytes(usable)} usable "
        f"RAM, leaving {shown_left} to the system; memory.min-system-ram "
        f"asks for at least {shown_min}")]


def _taken(facts: MachineFacts, placed: Sequence[Placed]) -> int:
    """What the regions take from the system: their size, less what system-ram regions
    hand back to the page allocator."""
    return sum(p.range.size for p in placed) - given_back(
        [(p.region, p.range) for p in placed], facts.memory_block)


def _state(problems: Sequence[Problem], pending: bool, reboot_required: bool,
           devices: Sequence[RegionDevice]) -> PlanState:
    if problems:
        return PlanState.INVALID_CONFIG
    if pending:
        return PlanState.CHANGES_PENDING
    if reboot_required:
        return PlanState.REBOOT_REQUIRED
    if any(d.state not in (DeviceState.READY, DeviceState.UNKNOWN) for d in devices):
        return PlanState.DEGRADED  # the command line is right; a device or mount is not
    return PlanState.CONVERGED


def _device_statuses(regions: Sequence[PlacedRegion], facts: MachineFacts
                     ) -> tuple[tuple[RegionDevice, ...], tuple[PmemDevice, ...]]:
    """Each region's device on this boot (by address), when the devices were read."""
    if facts.devices is None:
        return (), ()
    persistent = facts.memory.persistent if facts.memory.edited is not None else None
    statuses = tuple(apply_pmd_check(match_region(
        r.region, r.range, facts.devices, argument=r.argument,
        on_cmdline=r.on_running_cmdline, persistent=persistent), facts.pmd_checks)
                     for r in regions)
    return statuses, devices_elsewhere(facts.devices, [r.range for r in regions])


def _filesystems_this_boot(regions: Sequence[PlacedRegion], facts: MachineFacts
                           ) -> tuple[FsRecord, ...]:
    """What make-filesystem did on this boot for each region (the boot history), when the
    history was read."""
    history = facts.history
    if history is None or history.current is None:
        return ()
    found = []
    for placed in regions:
        record = history.filesystem(history.current, placed.range)
        if record is not None and record.region == placed.region.name:
            found.append(record)
    return tuple(found)


def _add_reason(region: PlacedRegion) -> str:
    text = f"region {region.region.name!r}"
    if region.placement is Placement.AUTO:
        text += (f" (placed by pmemd; pin it with 'offset: {render_size(region.range.start)}')")
    return text


def _conflicts(config: Config, found: _Found, regions: Sequence[PlacedRegion]
               ) -> list[Problem]:
    item = found.item
    problems = []
    for p in regions:
        key = f"regions[{p.region.index}]"
        if item.kind is MemmapKind.LIMIT and item.size < p.range.end:
            problems.append(config.source.problem(key, (
                f"{found.arg.text} on the command line (not written by pmemd) "
                f"{explain_item(item)}, so region {p.region.name!r} at {p.range} cannot exist; "
                "remove that option from the bootloader configuration"), p.region.index))
        elif item.range is not None and item.range.overlaps(p.range):
            problems.append(config.source.problem(key, (
                f"{found.arg.text} on the command line (not written by pmemd) overlaps region "
                f"{p.region.name!r} ({p.range}); remove that option from the bootloader "
                "configuration or move the region"), p.region.index))
    return problems
