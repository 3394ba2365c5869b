"""(pure) The e820 memory map in its three forms, typed.

``/sys/firmware/memmap`` is the firmware's map before any ``memmap=`` edits (what placing
regions reads, so every boot places them alike); ``/proc/iomem`` is this boot's map after
the edits (addresses need root; its lines are read by :mod:`pmemd.fastpath.iomem`); the
tables the kernel prints at boot give both (read by :mod:`pmemd.core.dmesg`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pmemd.core.ranges import MemRange
from pmemd.core.u64 import U64Error, parse_hex_u64
from pmemd.core.visible import visible
from pmemd.fastpath import iomem

LABEL_LIMIT = 40  # characters of a type's wording kept (the kernel's are under 30)


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
    oddities: tuple[str, ...] = ()  # what was odd about the firmware map, as read

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


def shown_label(label: str) -> str:
    """A type's wording from outside (sysfs, a paste) as pmemd keeps and prints it: escaped
    (no terminal control reaches the screen) and short."""
    return visible(label.strip(), LABEL_LIMIT)


# The kernel's type numbers (arch/x86/include/asm/e820/types.h): where entries overlap, the
# highest wins (e820__update_table).
E820_TYPES = {
    RangeKind.USABLE: 1,
    RangeKind.RESERVED: 2,
    RangeKind.ACPI: 3,
    RangeKind.ACPI_NVS: 4,
    RangeKind.UNUSABLE: 5,
    RangeKind.PERSISTENT: 7,
    RangeKind.PERSISTENT_LEGACY: 12,
    RangeKind.SOFT_RESERVED: 0xEFFFFFFF,
}
_TYPE_NUMBER = re.compile(r"type ([0-9]{1,10})", re.ASCII)
UNKNOWN_TYPE = 1 << 32  # a wording pmemd does not know: above every type, never usable


def e820_type(entry: E820Entry) -> int:
    """The kernel's number for an entry's type (``type 6`` as printed for types it does not
    name); a wording without a number ranks above all."""
    known = E820_TYPES.get(entry.kind)
    if known is not None:
        return known
    match = _TYPE_NUMBER.fullmatch(entry.label.strip())
    return int(match[1]) if match is not None else UNKNOWN_TYPE


def _hex(text: str, what: str) -> int:
    try:
        return parse_hex_u64(text, prefix=True)
    except U64Error as err:
        raise E820ParseError(f"{what}: {err}") from None


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
        label = shown_label(entry.type)
        parsed.append(E820Entry(MemRange(start, last + 1), kind_from_label(entry.type), label))
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
            entries.append(E820Entry(MemRange(start, end), kind, shown_label(name)))
    image = tuple(MemRange(start, end) for start, end in iomem.kernel_image(resources))
    return IomemMap(tuple(entries), image)
