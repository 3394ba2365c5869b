"""(pure) Config + machine facts → :class:`Plan`: where each region goes, what the command
line must gain or lose, whether a reboot is needed, and what the user should know."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pmemd.errors import Problem
from pmemd.kernel import (
    BASE_REQUIREMENTS,
    DAX_REQUIREMENTS,
    FS_REQUIREMENTS,
    Requirement,
    kaslr_built_in,
    missing_requirements,
)
from pmemd.memmap import (
    MemmapArg,
    align_down,
    aligned_parts,
    explain_item,
    memmap_args,
    render_memmap_arg,
    subtract,
)
from pmemd.model import (
    ChangeAction,
    Cmdline,
    CmdlineChange,
    Config,
    DeviceState,
    E820Entry,
    Finding,
    ForeignMemmap,
    FsBasis,
    FsRecord,
    GiB,
    KaslrPolicy,
    KernelInfo,
    MachineFacts,
    MemmapItem,
    MemmapKind,
    MemoryMap,
    MemRange,
    PlacedRegion,
    Placement,
    Plan,
    PlanState,
    PmemDevice,
    Region,
    RegionDevice,
)
from pmemd.sizes import format_bytes, render_size

NOKASLR = "nokaslr"
KASLR_SAFE_RAM = 16 * GiB  # the reference procedure: disable KASLR at 16 GiB or less
KASLR_AVOIDED_RANGES = 4  # the decompressor avoids at most this many memmap= ranges


# --- placement ----------------------------------------------------------------------------


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


# --- the plan -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _OnCmdline:
    arg: MemmapArg
    item: MemmapItem


def _items(cmdline: Cmdline) -> list[_OnCmdline]:
    return [_OnCmdline(arg, item) for arg in memmap_args(cmdline) for item in arg.items]


def _persistent_ranges(items: Iterable[_OnCmdline]) -> set[MemRange]:
    return {o.item.range for o in items
            if o.item.kind is MemmapKind.PERSISTENT and o.item.clean and o.item.range is not None}


def plan(config: Config, facts: MachineFacts, *, owned: Iterable[str] = (),
         next_boot: Cmdline | None = None) -> Plan:
    """The plan for ``config`` on a machine.

    ``owned`` lists the memmap= arguments pmemd wrote earlier (from its state): only those
    may be removed. ``next_boot`` is the bootloader's configured command line when known;
    without it, changes are judged against the running command line.
    """
    owned_args = frozenset(owned)
    placed, problems = place_regions(config, facts.memory)
    desired_by_range = {p.range: p for p in placed}
    target = next_boot if next_boot is not None else facts.cmdline
    running_items = _items(facts.cmdline)
    target_items = _items(target)
    running_ranges = _persistent_ranges(running_items)
    target_ranges = _persistent_ranges(target_items)
    want_nokaslr = config.boot.kaslr is KaslrPolicy.DISABLE

    regions = tuple(
        PlacedRegion(p.region, p.range, p.placement, render_memmap_arg(p.range),
                     p.range in running_ranges)
        for p in placed)
    desired_args = tuple(r.argument for r in regions) + ((NOKASLR,) if want_nokaslr else ())

    changes: list[CmdlineChange] = []
    for region in regions:
        if region.range in target_ranges:
            changes.append(CmdlineChange(ChangeAction.KEEP, region.argument,
                                         f"region {region.region.name!r}"))
        else:
            changes.append(CmdlineChange(ChangeAction.ADD, region.argument,
                                         _add_reason(region)))
    foreign: list[ForeignMemmap] = []
    warnings: list[Finding] = []
    removed: set[str] = set()
    for found in target_items:
        item = found.item
        if item.range in desired_by_range and item.kind is MemmapKind.PERSISTENT and item.clean:
            continue
        if found.arg.text in owned_args:
            if found.arg.text not in removed:
                removed.add(found.arg.text)
                changes.append(CmdlineChange(ChangeAction.REMOVE, found.arg.text,
                                             "written by pmemd; no longer in the config"))
            continue
        foreign.append(ForeignMemmap(found.arg.text, item, explain_item(item)))
        problems.extend(_conflicts(config, found, placed))
    if want_nokaslr and not target.has_flag(NOKASLR):
        changes.append(CmdlineChange(ChangeAction.ADD, NOKASLR, "boot.kaslr: disable"))

    warnings.extend(_foreign_findings(foreign))
    warnings.extend(_kaslr_findings(config, facts, placed, len(foreign)))
    warnings.extend(_kernel_image_findings(facts.memory, placed))
    warnings.extend(_kernel_support_findings(config, facts.kernel))
    filesystems = _filesystems_this_boot(regions, facts)
    warnings.extend(_filesystem_findings(filesystems))

    reserved = sum(p.range.size for p in placed)
    usable_total = facts.memory.usable_total
    left = usable_total - reserved
    if config.regions and left < config.memory.min_system_ram:
        problems.append(config.source.problem(
            "regions",
            f"the regions take {format_bytes(reserved)} of {format_bytes(usable_total)} usable "
            f"RAM, leaving {format_bytes(max(left, 0))} to the system; memory.min-system-ram "
            f"asks for at least {format_bytes(config.memory.min_system_ram)}"))

    reboot_required = (
        any(r.range not in running_ranges for r in regions)
        or (want_nokaslr and not facts.cmdline.has_flag(NOKASLR))
        or any(o.arg.text in owned_args and o.item.range not in desired_by_range
               for o in running_items))
    pending = any(c.action is not ChangeAction.KEEP for c in changes)
    devices, unmatched = _device_statuses(regions, facts)
    if problems:
        state = PlanState.INVALID_CONFIG
    elif pending:
        state = PlanState.CHANGES_PENDING
    elif reboot_required:
        state = PlanState.REBOOT_REQUIRED
    elif any(d.state not in (DeviceState.READY, DeviceState.UNKNOWN) for d in devices):
        state = PlanState.DEGRADED  # the command line is right; a device or mount is not
    else:
        state = PlanState.CONVERGED
    return Plan(
        state=state,
        regions=regions,
        desired_args=desired_args,
        running_args=tuple(a.text for a in memmap_args(facts.cmdline)),
        changes=tuple(changes),
        foreign=tuple(foreign),
        warnings=tuple(warnings),
        problems=tuple(problems),
        reboot_required=reboot_required or pending,
        memory_total=usable_total,
        memory_left=left,
        devices=devices,
        unmatched_devices=unmatched,
        filesystems=filesystems,
    )


def _device_statuses(regions: Sequence[PlacedRegion], facts: MachineFacts
                     ) -> tuple[tuple[RegionDevice, ...], tuple[PmemDevice, ...]]:
    """Each region's device on this boot (by address), when the devices were read."""
    if facts.devices is None:
        return (), ()
    from pmemd.devices import region_statuses, unmatched_devices  # not needed to place

    persistent = facts.memory.persistent if facts.memory.edited is not None else None
    return (region_statuses(regions, facts.devices, persistent),
            unmatched_devices(facts.devices, [r.range for r in regions]))


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


_ALARMING = {
    FsBasis.LOST: ("filesystem-lost", "what it kept is lost"),
    FsBasis.UNTRUSTED: ("filesystem-untrusted",
                        "what it kept is gone: the previous boot used its memory as RAM"),
}


def _filesystem_findings(records: Sequence[FsRecord]) -> list[Finding]:
    """The content of an ``on-boot: keep`` region is gone: loud, until the next boot."""
    findings = []
    for record in records:
        if record.basis in _ALARMING:
            code, what = _ALARMING[record.basis]
            findings.append(Finding(code, (
                f"region {record.region!r}: {what}; pmemd made a new, empty {record.fstype} "
                f"filesystem at this boot: {record.reason}"), record.region))
    return findings


def _add_reason(region: PlacedRegion) -> str:
    text = f"region {region.region.name!r}"
    if region.placement is Placement.AUTO:
        text += (f" (placed by pmemd; pin it with 'offset: {render_size(region.range.start)}')")
    return text


def _conflicts(config: Config, found: _OnCmdline, placed: Sequence[Placed]) -> list[Problem]:
    item = found.item
    problems = []
    for p in placed:
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


def _foreign_findings(foreign: Sequence[ForeignMemmap]) -> list[Finding]:
    findings = []
    for f in foreign:
        if f.item.junk and f.item.kind is not MemmapKind.EXACTMAP:
            findings.append(Finding("memmap-misparsed", (
                f"{f.argument}: the kernel misreads this option: it {f.explanation}. "
                "A stray backslash or quote from a shell is the usual cause; fix it in the "
                "bootloader configuration")))
        else:
            findings.append(Finding("foreign-memmap", (
                f"{f.argument} is on the command line but not in pmemd's config; pmemd leaves "
                f"it alone. It {f.explanation}")))
    return findings


def _kaslr_findings(config: Config, facts: MachineFacts, placed: Sequence[Placed],
                    foreign_count: int) -> list[Finding]:
    if not placed or config.boot.kaslr is KaslrPolicy.DISABLE:
        return []
    if facts.cmdline.has_flag(NOKASLR):
        return []
    built_in = kaslr_built_in(facts.kernel.next_config)
    if built_in is False:
        return []
    maybe = "" if built_in else " (probably: the kernel's config could not be read)"
    findings = []
    ranges = len(placed) + foreign_count
    ram = facts.memory.usable_total
    if ranges > KASLR_AVOIDED_RANGES:
        findings.append(Finding("kaslr-too-many-ranges", (
            f"KASLR is on{maybe} and the command line will carry {ranges} memmap ranges: the "
            f"kernel's decompressor avoids at most {KASLR_AVOIDED_RANGES}, so the kernel may "
            "be placed inside a pmem range and corrupt it. Set 'boot.kaslr: disable' "
            "(adds nokaslr) or use fewer regions")))
    elif ram <= KASLR_SAFE_RAM:
        findings.append(Finding("kaslr", (
            f"KASLR is on{maybe} and this machine has {format_bytes(ram)} of RAM: the "
            "reference procedure advises disabling KASLR at 16 GiB or less, since a "
            "randomized kernel can land in emulated pmem. Set 'boot.kaslr: disable' to add "
            "nokaslr")))
    return findings


def _kernel_image_findings(memory: MemoryMap, placed: Sequence[Placed]) -> list[Finding]:
    findings = []
    for p in placed:
        inside = [r for r in memory.kernel_image if r.overlaps(p.range)]
        if inside:
            span = MemRange(min(r.start for r in inside), max(r.end for r in inside))
            findings.append(Finding("kernel-image-in-region", (
                f"on this boot the kernel image ({span}) lies inside region {p.region.name!r} "
                f"({p.range}); a kernel loaded there again would corrupt the region. Move the "
                "region or set 'boot.kaslr: disable'"), p.region.name))
    return findings


def _kernel_support_findings(config: Config, kernel: KernelInfo) -> list[Finding]:
    if not config.regions:
        return []
    release = kernel.next_release or "unknown"
    if kernel.next_config is None:
        where = kernel.next_config_path or "/boot/config-<release>"
        return [Finding("kernel-config-unknown", (
            f"cannot check kernel {release} for pmem support: {where} is missing"))]
    needed: list[Requirement] = list(BASE_REQUIREMENTS)
    fs_types = {r.filesystem.type.value for r in config.regions if r.filesystem is not None}
    if fs_types:
        needed.extend(DAX_REQUIREMENTS)
        needed.extend(FS_REQUIREMENTS[t] for t in sorted(fs_types))
    return [
        Finding("kernel-support", (
            f"kernel {release} lacks {r.option} (needs {' or '.join(r.values)}): {r.why}; "
            f"without it the regions will not work ({kernel.next_config_path})"))
        for r in missing_requirements(kernel.next_config, needed)
    ]
