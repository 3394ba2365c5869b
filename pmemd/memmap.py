"""(pure) ``memmap=`` arguments as the kernel reads them, and the e820 map in its three forms.

The e820 map is read from ``/sys/firmware/memmap`` (the firmware's map, before any
``memmap=`` edits), ``/proc/iomem`` (this boot's edited map, addresses need root) and
pasted ``dmesg`` lines (``BIOS-e820:`` for the firmware map, ``user:`` for the edited one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pmemd.model import (
    Cmdline,
    E820Entry,
    MemmapItem,
    MemmapKind,
    MemoryMap,
    MemRange,
    RangeKind,
)
from pmemd.sizes import memparse, render_size

MEMMAP_KEY = "memmap"

_KIND_BY_SEPARATOR = {
    "!": MemmapKind.PERSISTENT,
    "@": MemmapKind.RAM,
    "#": MemmapKind.ACPI,
    "$": MemmapKind.RESERVED,
    "%": MemmapKind.RETYPE,
}


class MemmapParseError(ValueError):
    """Malformed map input; ``line`` is 1-based within the parsed text."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


# --- memmap= ------------------------------------------------------------------------------


def parse_memmap_item(text: str) -> MemmapItem:
    """One item, following ``arch/x86/kernel/e820.c:parse_memmap_one``."""
    if text.startswith("exactmap"):
        return MemmapItem(text, MemmapKind.EXACTMAP, junk=text[len("exactmap") :])
    size, end = memparse(text)
    if end == 0:
        return MemmapItem(text, MemmapKind.INVALID, junk=text)
    separator = text[end : end + 1]
    kind = _KIND_BY_SEPARATOR.get(separator)
    if kind is None:
        # Anything else makes the kernel cut RAM at `size` (like mem=), junk or not.
        return MemmapItem(text, MemmapKind.LIMIT, size=size, junk=text[end:])
    start, end = memparse(text, end + 1)
    if kind is MemmapKind.RETYPE:
        end = _skip_retype_types(text, end)
    return MemmapItem(text, kind, size=size, start=start, junk=text[end:])


def _skip_retype_types(text: str, pos: int) -> int:
    """``nn%ss-old+new``: the type numbers after the range."""
    for marker in ("-", "+"):
        if text.startswith(marker, pos):
            _, pos = memparse(text, pos + 1)
    return pos


def parse_memmap_value(value: str) -> tuple[MemmapItem, ...]:
    """A whole ``memmap=`` value: items separated by commas, each applied on its own."""
    return tuple(parse_memmap_item(item) for item in value.split(","))


@dataclass(frozen=True)
class MemmapArg:
    """A ``memmap=`` argument of a command line and what the kernel makes of it."""

    text: str  # the argument as written, e.g. memmap=4G!12G
    items: tuple[MemmapItem, ...]


def memmap_args(cmdline: Cmdline) -> tuple[MemmapArg, ...]:
    """Every ``memmap=`` argument the kernel acts on (not those passed on to init)."""
    found = []
    for arg in cmdline.args:
        if arg.key != MEMMAP_KEY or arg.after_dashdash:
            continue
        items = parse_memmap_value(arg.value) if arg.value is not None else ()
        found.append(MemmapArg(arg.text, items))
    return tuple(found)


class UnsafeMemmapError(AssertionError):
    """pmemd was about to write a memmap= argument the kernel would read differently."""


def render_memmap_arg(target: MemRange) -> str:
    """``memmap=SIZE!START`` in canonical form, proven to read back as exactly ``target``."""
    value = f"{render_size(target.size)}!{render_size(target.start)}"
    argument = f"{MEMMAP_KEY}={value}"
    items = parse_memmap_value(value)
    ok = (
        target.size > 0
        and len(items) == 1
        and items[0].kind is MemmapKind.PERSISTENT
        and items[0].clean
        and items[0].range == target
        and re.fullmatch(r"memmap=[0-9]+[KMGTPE]?![0-9]+[KMGTPE]?", argument) is not None
    )
    if not ok:
        raise UnsafeMemmapError(f"{argument!r} would not read back as {target}")
    return argument


def explain_item(item: MemmapItem) -> str:
    """What the kernel does with an item pmemd did not write, in a user's words."""
    size = render_size(item.size)
    rng = item.range
    where = f" at {rng}" if rng is not None else ""
    effect = {
        MemmapKind.PERSISTENT: f"emulated persistent memory (type 12), {size}{where}",
        MemmapKind.RAM: f"forces {size}{where} to be usable RAM",
        MemmapKind.ACPI: f"marks {size}{where} as ACPI data",
        MemmapKind.RESERVED: f"reserves {size}{where}",
        MemmapKind.RETYPE: f"changes the type of {size}{where}",
        MemmapKind.LIMIT: f"limits usable RAM to the first {size} (like mem={size})",
        MemmapKind.EXACTMAP: "discards the firmware memory map (exactmap)",
        MemmapKind.INVALID: "is not understood by the kernel and ignored",
    }[item.kind]
    if item.junk and item.kind is not MemmapKind.INVALID:
        consumed = item.text[: len(item.text) - len(item.junk)]
        effect += (
            f"; the kernel stops reading at {item.junk!r} but has already applied {consumed!r}"
        )
    return effect


# --- e820 ---------------------------------------------------------------------------------

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
        raise MemmapParseError(f"{what}: {text.strip()!r} is not a hexadecimal address") from None


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
            raise MemmapParseError(f"{entry.name}: end 0x{last:x} is below start 0x{start:x}")
        label = entry.type.strip()
        parsed.append(E820Entry(MemRange(start, last + 1), kind_from_label(label), label))
    return tuple(sorted(parsed, key=lambda e: (e.range.start, e.range.end)))


@dataclass(frozen=True)
class IomemNode:
    range: MemRange
    name: str
    depth: int
    children: tuple[IomemNode, ...] = ()


_IOMEM_LINE = re.compile(r"^( *)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)$")


def parse_iomem(text: str) -> tuple[IomemNode, ...] | None:
    """The ``/proc/iomem`` tree; ``None`` when its addresses are hidden (not read as root)."""
    stack: list[tuple[int, MemRange, str, list[IomemNode]]] = []
    roots: list[IomemNode] = []
    any_address = False

    def close(level: int) -> None:
        while stack and stack[-1][0] >= level:
            depth, rng, name, kids = stack.pop()
            node = IomemNode(rng, name, depth, tuple(kids))
            (stack[-1][3] if stack else roots).append(node)

    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _IOMEM_LINE.match(line)
        if match is None:
            raise MemmapParseError(f"not an iomem line: {line.strip()!r}", number)
        indent, first, last, name = match.groups()
        depth = len(indent) // 2
        start, end = int(first, 16), int(last, 16) + 1
        any_address = any_address or start != 0 or end != 1
        close(depth)
        stack.append((depth, MemRange(start, end), name, []))
    close(0)
    return tuple(roots) if any_address else None


_KERNEL_IMAGE_NAMES = ("Kernel code", "Kernel rodata", "Kernel data", "Kernel bss")


def iomem_to_map(nodes: Sequence[IomemNode]) -> tuple[tuple[E820Entry, ...], tuple[MemRange, ...]]:
    """Top-level e820 kinds of this boot's map, and where the kernel image sits."""
    entries: list[E820Entry] = []
    image: list[MemRange] = []
    for node in nodes:
        kind = kind_from_label(node.name)
        if kind is not RangeKind.OTHER:
            entries.append(E820Entry(node.range, kind, node.name))
        image.extend(c.range for c in node.children if c.name in _KERNEL_IMAGE_NAMES)
    return tuple(entries), tuple(sorted(image))


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
            raise MemmapParseError(f"empty or reversed range in {line.strip()!r}", number)
        entry = E820Entry(MemRange(start, end), kind_from_label(label), label.strip())
        runs = blocks[entry_source]
        if not runs or entry.range.start <= runs[-1][-1].range.start:
            runs.append([])  # a new map starts (another boot in the same log)
        runs[-1].append(entry)
    if not blocks["BIOS-e820"]:
        raise MemmapParseError("no 'BIOS-e820:' lines found (paste the output of 'dmesg')")
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


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def align_down(value: int, alignment: int) -> int:
    return value // alignment * alignment


def subtract(ranges: Iterable[MemRange], taken: Iterable[MemRange]) -> tuple[MemRange, ...]:
    """``ranges`` with every part that lies in ``taken`` removed."""
    pieces = sorted(ranges)
    for cut in sorted(taken):
        kept: list[MemRange] = []
        for piece in pieces:
            if not piece.overlaps(cut):
                kept.append(piece)
                continue
            if piece.start < cut.start:
                kept.append(MemRange(piece.start, cut.start))
            if cut.end < piece.end:
                kept.append(MemRange(cut.end, piece.end))
        pieces = kept
    return tuple(pieces)


def aligned_parts(ranges: Iterable[MemRange], alignment: int) -> tuple[MemRange, ...]:
    """The aligned part of each range, largest first (ties: higher address first)."""
    aligned = []
    for rng in ranges:
        start, end = align_up(rng.start, alignment), align_down(rng.end, alignment)
        if end > start:
            aligned.append(MemRange(start, end))
    return tuple(sorted(aligned, key=lambda r: (-r.size, -r.start)))
