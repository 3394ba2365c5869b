"""(pure) The e820 memory map in its three forms, typed.

``/sys/firmware/memmap`` is the firmware's map before any ``memmap=`` edits (what placing
regions reads, so every boot places them alike); ``/proc/iomem`` is this boot's map after
the edits (addresses need root; its lines are read by :mod:`pmemd.fastpath.iomem`); pasted
``dmesg`` lines give both (``BIOS-e820:`` the firmware's, ``user:`` the edited one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pmemd.core.ranges import MemRange
from pmemd.fastpath import iomem


class RangeKind(StrEnum):
    USABLE = "usable"
    RESERVED = "reserved"
    ACPI = "acpi"
    ACPI_NVS = "acpi-nvs"
    UNUSABLE = "unusable"
    PERSISTENT_LEGACY = "persistent-legacy"  # e820 type 12: what memmap=nn!ss creates
    PERSISTENT = "persistent"  # e820 type 7 (ACPI NFIT-described)
    SOFT_RESERVED = "soft-reserved"
    OTHER = "other"


@dataclass(frozen=True)
class E820Entry:
    range: MemRange
    kind: RangeKind
    label: str  # the wording of the source (sysfs type, iomem name, dmesg type)


@dataclass(frozen=True)
class MemoryMap:
    """The firmware map (before memmap= edits) and, when known, the edited map of this boot."""

    firmware: tuple[E820Entry, ...]
    firmware_source: str
    edited: tuple[E820Entry, ...] | None = None
    edited_source: str | None = None
    kernel_image: tuple[MemRange, ...] = ()  # "Kernel code/rodata/data/bss" of this boot

    @property
    def usable(self) -> tuple[MemRange, ...]:
        return tuple(e.range for e in self.firmware if e.kind is RangeKind.USABLE)

    @property
    def usable_total(self) -> int:
        return sum(r.size for r in self.usable)

    @property
    def persistent(self) -> tuple[MemRange, ...]:
        """Type-12 ranges active on this boot (empty when the edited map is unknown)."""
        entries = self.edited or ()
        return tuple(e.range for e in entries if e.kind is RangeKind.PERSISTENT_LEGACY)


class E820ParseError(ValueError):
    """Malformed map input (sysfs, iomem or dmesg); ``line`` is 1-based within the parsed text."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


_SYSFS_KINDS = {
    "system ram": RangeKind.USABLE,
    "reserved": RangeKind.RESERVED,
    "acpi tables": RangeKind.ACPI,
    "acpi non-volatile storage": RangeKind.ACPI_NVS,
    "unusable memory": RangeKind.UNUSABLE,
    "persistent memory (legacy)": RangeKind.PERSISTENT_LEGACY,
    "persistent memory": RangeKind.PERSISTENT,
    "soft reserved": RangeKind.SOFT_RESERVED,
}


_DMESG_KINDS = {
    "usable": RangeKind.USABLE,
    "reserved": RangeKind.RESERVED,
    "acpi data": RangeKind.ACPI,
    "acpi nvs": RangeKind.ACPI_NVS,
    "unusable": RangeKind.UNUSABLE,
    "persistent (type 12)": RangeKind.PERSISTENT_LEGACY,
    "persistent (type 7)": RangeKind.PERSISTENT,
    "soft reserved": RangeKind.SOFT_RESERVED,
}


def kind_from_label(label: str) -> RangeKind:
    """The kind of a range from its sysfs/iomem or dmesg wording."""
    key = label.strip().lower()
    return _SYSFS_KINDS.get(key) or _DMESG_KINDS.get(key) or RangeKind.OTHER


def _hex(text: str, what: str) -> int:
    try:
        return int(text.strip(), 16)
    except ValueError:
        raise E820ParseError(f"{what}: {text.strip()!r} is not a hexadecimal address") from None


@dataclass(frozen=True)
class SysfsMemmapEntry:
    """The three files of one ``/sys/firmware/memmap/N`` directory."""

    name: str
    start: str
    end: str
    type: str


def parse_sysfs_memmap(entries: Iterable[SysfsMemmapEntry]) -> tuple[E820Entry, ...]:
    parsed = []
    for entry in entries:
        start = _hex(entry.start, f"{entry.name}/start")
        last = _hex(entry.end, f"{entry.name}/end")
        if last < start:
            raise E820ParseError(f"{entry.name}: end 0x{last:x} is below start 0x{start:x}")
        label = entry.type.strip()
        parsed.append(E820Entry(MemRange(start, last + 1), kind_from_label(label), label))
    return tuple(sorted(parsed, key=lambda e: (e.range.start, e.range.end)))


@dataclass(frozen=True)
class IomemMap:
    """What ``/proc/iomem`` says about this boot: its top-level e820 ranges (after
    ``memmap=`` edits) and where the kernel image lies."""

    entries: tuple[E820Entry, ...]
    kernel_image: tuple[MemRange, ...]


def parse_iomem(text: str) -> IomemMap | None:
    """``/proc/iomem`` read by :func:`pmemd.fastpath.iomem.parse_iomem` (the one reader of
    its lines), typed; ``None`` when its addresses are hidden (not read as root)."""
    try:
        resources = iomem.parse_iomem(text)
    except iomem.IomemFormatError as err:
        raise E820ParseError(str(err), err.line) from None
    if resources is None:
        return None
    entries = []
    for depth, start, end, name in resources:
        kind = kind_from_label(name)
        if depth == 0 and kind is not RangeKind.OTHER:
            entries.append(E820Entry(MemRange(start, end), kind, name))
    image = tuple(MemRange(start, end) for start, end in iomem.kernel_image(resources))
    return IomemMap(tuple(entries), image)


_DMESG_NEW = re.compile(
    r"\b(BIOS-e820|user): \[mem (0x[0-9a-fA-F]+)-(0x[0-9a-fA-F]+)\] ([^\r\n]*?)\s*$"
)


_DMESG_OLD = re.compile(
    r"\b(BIOS-e820|user): ([0-9a-fA-F]{8,16}) - ([0-9a-fA-F]{8,16}) \(([^)]*)\)"
)


@dataclass(frozen=True)
class DmesgMap:
    firmware: tuple[E820Entry, ...]
    edited: tuple[E820Entry, ...] | None


def parse_dmesg_e820(text: str) -> DmesgMap:
    """``BIOS-e820:`` (firmware) and ``user:`` (after memmap=) lines of a dmesg or journal.

    Both the current ``[mem 0x…-0x…] type`` form and the old ``start - end (type)`` form
    (exclusive end) are read. When the text holds several boots, the last one counts.
    """
    blocks: dict[str, list[list[E820Entry]]] = {"BIOS-e820": [], "user": []}
    for number, line in enumerate(text.splitlines(), 1):
        entry_source: str
        match = _DMESG_NEW.search(line)
        if match is not None:
            entry_source, first, last, label = match.groups()
            start, end = int(first, 16), int(last, 16) + 1
        else:
            old = _DMESG_OLD.search(line)
            if old is None:
                continue
            entry_source, first, last, label = old.groups()
            start, end = int(first, 16), int(last, 16)
        if end <= start:
            raise E820ParseError(f"empty or reversed range in {line.strip()!r}", number)
        entry = E820Entry(MemRange(start, end), kind_from_label(label), label.strip())
        runs = blocks[entry_source]
        if not runs or entry.range.start <= runs[-1][-1].range.start:
            runs.append([])  # a new map starts (another boot in the same log)
        runs[-1].append(entry)
    if not blocks["BIOS-e820"]:
        raise E820ParseError("no 'BIOS-e820:' lines found (paste the output of 'dmesg')")
    firmware = tuple(blocks["BIOS-e820"][-1])
    edited = tuple(blocks["user"][-1]) if blocks["user"] else None
    return DmesgMap(firmware, edited)


def memory_map_from_dmesg(text: str, source: str) -> MemoryMap:
    parsed = parse_dmesg_e820(text)
    return MemoryMap(
        firmware=parsed.firmware,
        firmware_source=f"{source} (BIOS-e820)",
        edited=parsed.edited,
        edited_source=f"{source} (user)" if parsed.edited is not None else None,
    )
