"""(pure) What the user should know about a plan: warnings with stable codes.

Each finding is a function of the config and the facts; none of them stops a plan (those
are :class:`~pmemd.errors.Problem`). KASLR, the running kernel's image inside a region, a
kernel lacking what pmem needs, ``memmap=`` options pmemd did not write, and the content of
an ``on-boot: keep`` region lost at this boot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pmemd.core.e820 import MemoryMap
from pmemd.core.facts import MachineFacts
from pmemd.core.history import FsBasis, FsRecord
from pmemd.core.kernel import (
    BASE_REQUIREMENTS,
    DAX_REQUIREMENTS,
    FS_REQUIREMENTS,
    KernelInfo,
    Requirement,
    kaslr_built_in,
    missing_requirements,
)
from pmemd.core.memmap import MemmapItem, MemmapKind
from pmemd.core.model import Config, KaslrPolicy
from pmemd.core.modes import FS_DAX_PMD, mode_requirements
from pmemd.core.placement import Placed
from pmemd.core.ranges import GiB, MemRange
from pmemd.core.sizes import format_bytes


@dataclass(frozen=True)
class Finding:
    """A warning or note for the user; ``code`` is stable for JSON consumers."""

    code: str
    message: str
    region: str | None = None


@dataclass(frozen=True)
class ForeignMemmap:
    """A memmap= item on the command line that pmemd did not and would not write."""

    argument: str
    item: MemmapItem
    explanation: str


NOKASLR = "nokaslr"
KASLR_SAFE_RAM = 16 * GiB  # the reference procedure: disable KASLR at 16 GiB or less
KASLR_AVOIDED_RANGES = 4  # the decompressor avoids at most this many memmap= ranges
_ALARMING = {
    FsBasis.LOST: ("filesystem-lost", "what it kept is lost"),
    FsBasis.UNTRUSTED: ("filesystem-untrusted",
                        "what it kept is gone: the previous boot used its memory as RAM"),
}


def firmware_map_findings(memory: MemoryMap) -> list[Finding]:
    """The firmware memory map had overlaps, duplicates or was out of order: pmemd reads
    it as the kernel does, and says what was odd (a broken BIOS table is worth knowing of
    before memory is reserved from it)."""
    if not memory.oddities:
        return []
    return [Finding("firmware-map-odd", (
        f"the firmware memory map ({memory.firmware_source}) is odd, read as the kernel reads "
        "it: " + "; ".join(memory.oddities)))]


def filesystem_findings(records: Sequence[FsRecord]) -> list[Finding]:
    """The content of an ``on-boot: keep`` region is gone: loud, until the next boot."""
    findings = []
    for record in records:
        if record.basis in _ALARMING:
            code, what = _ALARMING[record.basis]
            findings.append(Finding(code, (
                f"region {record.region!r}: {what}; pmemd made a new, empty {record.fstype} "
                f"filesystem at this boot: {record.reason}"), record.region))
    return findings


def foreign_findings(foreign: Sequence[ForeignMemmap]) -> list[Finding]:
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


def kaslr_findings(config: Config, facts: MachineFacts, placed: Sequence[Placed],
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


def kernel_image_findings(memory: MemoryMap, placed: Sequence[Placed]) -> list[Finding]:
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


def kernel_support_findings(config: Config, kernel: KernelInfo) -> list[Finding]:
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
        needed.append(FS_DAX_PMD)
    needed.extend(mode_requirements(config.regions))
    return [
        Finding("kernel-support", (
            f"kernel {release} lacks {r.option} (needs {' or '.join(r.values)}): {r.why}; "
            f"without it the regions will not work ({kernel.next_config_path})"))
        for r in missing_requirements(kernel.next_config, needed)
    ]
