"""(pure) What each namespace mode needs from the machine: the kernel's build options, and
for ``system-ram`` the memory block size the kernel hot-plugs memory in.

A ``memmap=`` namespace is already fsdax with its page structures in RAM as the kernel
makes it (``raw``; ``ndctl list`` says ``"mode":"fsdax","map":"mem"``);
``ndctl create-namespace -m fsdax --map=dev`` writes a pfn info block at its start and the
page structures after it; ``-m devdax`` writes an info block and gives a character device;
``daxctl reconfigure-device --mode=system-ram`` hands a devdax device's
memory to the page allocator through the kmem driver, in whole memory blocks
(``/sys/devices/system/memory/block_size_bytes``): the blocks the info block touches stay
out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pmemd.core.kernel import Requirement
from pmemd.core.model import Config, NamespaceMode, Region
from pmemd.core.ranges import MemRange
from pmemd.core.sizes import format_bytes, render_size
from pmemd.errors import Problem

_PFN = Requirement("CONFIG_NVDIMM_PFN", ("y",),
                   "pfn info blocks: fsdax namespaces with page structures")
_ND_DAX = Requirement("CONFIG_NVDIMM_DAX", ("y",), "device-DAX namespaces")
_DEV_DAX = Requirement("CONFIG_DEV_DAX", ("y", "m"), "the /dev/daxX.Y character devices")
_DEV_DAX_PMEM = Requirement("CONFIG_DEV_DAX_PMEM", ("y", "m"),
                            "device-DAX on pmem namespaces (dax_pmem)")
_KMEM = Requirement("CONFIG_DEV_DAX_KMEM", ("y", "m"),
                    "hands a device-DAX range to the page allocator (kmem)")
_HOTPLUG = Requirement("CONFIG_MEMORY_HOTPLUG", ("y",), "adds memory to a running kernel")
FS_DAX_PMD = Requirement("CONFIG_FS_DAX_PMD", ("y",),
                         "2 MiB (PMD) faults on DAX files; without it every fault maps 4 KiB")

MODE_REQUIREMENTS: dict[NamespaceMode, tuple[Requirement, ...]] = {
    NamespaceMode.RAW: (),
    NamespaceMode.FSDAX: (_PFN,),
    NamespaceMode.DEVDAX: (_ND_DAX, _DEV_DAX, _DEV_DAX_PMEM),
    NamespaceMode.SYSTEM_RAM: (_ND_DAX, _DEV_DAX, _DEV_DAX_PMEM, _KMEM, _HOTPLUG),
}


def describe_mode(region: Region) -> str:
    """The mode as pmemd shows it: ``raw``, ``fsdax map=dev``, ``devdax align=2M map=mem``."""
    if region.mode is NamespaceMode.RAW:
        return region.mode.value
    words = [region.mode.value]
    if region.mode is not NamespaceMode.FSDAX:
        words.append(f"align={render_size(region.align)}")
    words.append(f"map={region.map.value}")
    return " ".join(words)


def mode_json(region: Region) -> dict[str, object]:
    """The mode in documents (``pmemd plan --json``): map and align only where they apply."""
    out: dict[str, object] = {"mode": region.mode.value}
    if region.mode is not NamespaceMode.RAW:
        out["map"] = region.map.value
    if region.mode in (NamespaceMode.DEVDAX, NamespaceMode.SYSTEM_RAM):
        out["align"] = region.align
    return out


def mode_requirements(regions: Sequence[Region]) -> tuple[Requirement, ...]:
    """The kernel options the regions' modes need, each once, in a stable order."""
    seen: dict[str, Requirement] = {}
    for region in regions:
        for requirement in MODE_REQUIREMENTS[region.mode]:
            seen.setdefault(requirement.option, requirement)
    return tuple(seen.values())


@dataclass(frozen=True)
class HotplugShare:
    """What a system-ram region gives the page allocator: the whole memory blocks after
    its first block (which the info block occupies)."""

    region: str
    range: MemRange
    block: int

    @property
    def added(self) -> int:
        first = (self.range.start // self.block + 1) * self.block
        last = self.range.end // self.block * self.block
        return max(last - first, 0)


def given_back(placed: Sequence[tuple[Region, MemRange]], block: int | None) -> int:
    """How much of the regions' memory system-ram hands back to the page allocator (0 when
    the memory block size is unknown: nothing is counted that cannot be shown)."""
    if block is None or block <= 0:
        return 0
    return sum(HotplugShare(region.name, rng, block).added for region, rng in placed
               if region.mode is NamespaceMode.SYSTEM_RAM and not rng.start % block
               and not rng.size % block)


def system_ram_problems(config: Config, placed: Sequence[tuple[Region, MemRange]],
                        block: int | None) -> list[Problem]:
    """system-ram regions that do not lie on whole memory blocks of ``block`` bytes, or
    would give the page allocator nothing (``block`` ``None``: unknown, nothing checked)."""
    if block is None or block <= 0:
        return []
    problems = []
    for region, rng in placed:
        if region.mode is not NamespaceMode.SYSTEM_RAM:
            continue
        key = f"regions[{region.index}]"
        why = (f"the kernel adds memory in {render_size(block)} blocks "
               "(/sys/devices/system/memory/block_size_bytes)")
        if rng.start % block or rng.size % block:
            what = "offset" if rng.start % block and region.offset is not None else "size"
            hint = "" if region.offset is not None else \
                " (pmemd placed it: set its offset, or memory.alignment to the block size)"
            problems.append(config.source.problem(
                f"{key}.{what}", f"system-ram region {region.name!r} ({rng}) must start and "
                f"end on memory blocks: {why}{hint}", region.index))
        elif HotplugShare(region.name, rng, block).added == 0:
            problems.append(config.source.problem(
                f"{key}.size", f"system-ram region {region.name!r} is "
                f"{format_bytes(rng.size)}: {why}, and its first block holds the namespace's "
                f"info block, so nothing would be added; make it at least "
                f"{render_size(2 * block)}", region.index))
    return problems
