"""(pure) ``memmap=`` arguments as the kernel reads them, and the one answer to "does this
command line reserve this range as pmem" (:func:`reserved_ranges`).

pmemd writes only ``memmap=SIZE!START`` in canonical form, proven to read back as the range
it means (:func:`render_memmap_arg`); everything else it finds is explained, never dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from pmemd.core.cmdline import Cmdline
from pmemd.core.ranges import MemRange
from pmemd.core.sizes import SUFFIX_SHIFT, U64_MAX, render_size


class MemmapKind(StrEnum):
    PERSISTENT = "persistent"  # nn!ss
    RAM = "ram"  # nn@ss
    ACPI = "acpi"  # nn#ss
    RESERVED = "reserved"  # nn$ss
    RETYPE = "retype"  # nn%ss-t+t
    LIMIT = "limit"  # bare nn: like mem=nn
    EXACTMAP = "exactmap"
    INVALID = "invalid"  # the kernel read nothing


@dataclass(frozen=True)
class MemmapItem:
    """One comma-separated item of a ``memmap=`` argument, as the kernel reads it."""

    text: str
    kind: MemmapKind
    size: int = 0
    start: int | None = None
    junk: str = ""  # what the kernel did not parse; the part before it was still applied

    @property
    def range(self) -> MemRange | None:
        if self.start is None:
            return None
        return MemRange.sized(self.start, self.size)

    @property
    def clean(self) -> bool:
        return not self.junk and self.kind is not MemmapKind.INVALID


MEMMAP_KEY = "memmap"
_KIND_BY_SEPARATOR = {
    "!": MemmapKind.PERSISTENT,
    "@": MemmapKind.RAM,
    "#": MemmapKind.ACPI,
    "$": MemmapKind.RESERVED,
    "%": MemmapKind.RETYPE,
}


_DIGITS = "0123456789abcdef"  # what lib/kstrtox.c takes as digits: ASCII, either case


def _digit(char: str) -> int | None:
    value = _DIGITS.find(char.lower()) if char.isascii() and len(char) == 1 else -1
    return value if value >= 0 else None


def strtoull(text: str, pos: int = 0) -> tuple[int, int]:
    """``simple_strtoull(s, &end, 0)``: the base from the prefix (``0x`` followed by a hex
    digit: 16; a leading ``0``: 8; else 10), ASCII digits only, wrapping at 64 bits.
    ``end == pos`` when no digit was read."""
    base = 10
    if text.startswith("0", pos):
        base = 8
        if text[pos + 1 : pos + 2] in ("x", "X") and _digit(text[pos + 2 : pos + 3]) is not None:
            base, pos = 16, pos + 2
    value = 0
    while pos < len(text):
        digit = _digit(text[pos])
        if digit is None or digit >= base:
            break
        value = (value * base + digit) & U64_MAX
        pos += 1
    return value, pos


def memparse(text: str, pos: int = 0) -> tuple[int, int]:
    """``lib/cmdline.c:memparse``: :func:`strtoull`, then one K/M/G/T/P/E in either case,
    taken even after no digits (``K`` reads as 0 and is consumed); wraps at 64 bits."""
    value, end = strtoull(text, pos)
    suffix = text[end : end + 1]
    shift = SUFFIX_SHIFT.get(suffix.upper()) if suffix.isascii() else None
    if shift is not None:
        value, end = (value << shift) & U64_MAX, end + 1
    return value, end


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
        if end != len(text):  # checked before anything is applied
            return MemmapItem(text, MemmapKind.INVALID, junk=text)
    return MemmapItem(text, kind, size=size, start=start, junk=text[end:])


def _skip_retype_types(text: str, pos: int) -> int:
    """``nn%ss-old+new``: the type numbers after the range (plain numbers, no suffix)."""
    for marker in ("-", "+"):
        if text.startswith(marker, pos):
            _, pos = strtoull(text, pos + 1)
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


def reserved_range(item: MemmapItem) -> MemRange | None:
    """The range ``item`` makes emulated pmem, when the kernel reads it whole as one."""
    if item.kind is MemmapKind.PERSISTENT and item.clean:
        return item.range
    return None


def reserved_ranges(cmdline: Cmdline) -> frozenset[MemRange]:
    """The ranges this command line makes emulated pmem. A region's option "is on" a
    command line exactly when its range is in this set, however the option is spelt
    (``4G!12G`` or ``0x100000000!0x300000000``) and whoever wrote it."""
    found = (reserved_range(item) for arg in memmap_args(cmdline) for item in arg.items)
    return frozenset(rng for rng in found if rng is not None)


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
