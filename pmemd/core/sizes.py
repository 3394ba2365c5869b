"""Sizes as the kernel's ``memparse`` reads them, and their canonical rendering.

Two readers share one model of ``lib/cmdline.c``:

* :func:`memparse` reads like the kernel: it stops at the first character it cannot
  use and says where, so callers can see what the kernel really applied.
* :func:`parse_size` is the strict reader for pmemd's own config: the whole text must
  be consumed, and forms that the kernel reads differently from how people read them
  (a leading ``0`` makes the kernel read octal) are refused.

:func:`render_size` writes the one canonical form: decimal with the largest exact unit.
"""

from __future__ import annotations

import re

from pmemd.errors import quoted

U64_MAX = (1 << 64) - 1
# Suffix -> shift, as memparse's fallthrough switch applies them.
SUFFIX_SHIFT = {"K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
_RENDER_UNITS = ("E", "P", "T", "G", "M", "K")
_HUMAN_UNITS = ("EiB", "PiB", "TiB", "GiB", "MiB", "KiB")
_HEX = "0123456789abcdefABCDEF"
# The digits of each base, ASCII only ([0-9] in a str pattern is ASCII; \d is not).
_DIGIT_RUNS = {8: re.compile("[0-7]*"), 10: re.compile("[0-9]*"),
               16: re.compile("[0-9a-fA-F]*")}
_CHUNK = 15  # digits read at once: 15 hex digits still fit in 64 bits


def _read_number(text: str, pos: int) -> tuple[int, int]:
    """``simple_strtoull(s, &end, 0)`` without the 64-bit wrap: base from the prefix, ASCII
    digits only (as C's ``isxdigit``; Python's ``int()`` takes any Unicode digit). A value
    past 64 bits is kept as ``2**64 + (value mod 2**64)``: still too large, and what the
    kernel's wrap makes of it; the digits are read in chunks that never grow past 64 bits,
    so a million of them cost milliseconds (not a quadratic big-number loop)."""
    base = 10
    if text.startswith("0", pos):
        if text[pos + 1 : pos + 2] in ("x", "X") and text[pos + 2 : pos + 3] and (
            text[pos + 2] in _HEX
        ):
            base, pos = 16, pos + 2
        else:
            base = 8
    run = _DIGIT_RUNS[base].match(text, pos)  # a run of no digits matches too
    end = run.end() if run is not None else pos
    value, wrapped = 0, False
    for start in range(pos, end, _CHUNK):
        chunk = text[start : min(start + _CHUNK, end)]
        value = value * base ** len(chunk) + int(chunk, base)
        if value > U64_MAX:
            value, wrapped = value & U64_MAX, True
    return (value | (U64_MAX + 1) if wrapped else value), end


def _read_size(text: str, pos: int) -> tuple[int, int]:
    """memparse without the wrap: the value (exact up to 64 bits, past them larger than
    any 64-bit value and equal to the kernel's modulo 2**64) and where reading stopped."""
    value, end = _read_number(text, pos)
    if end == pos:
        return 0, pos
    suffix = text[end : end + 1].upper()
    if suffix in SUFFIX_SHIFT:
        value <<= SUFFIX_SHIFT[suffix]
        end += 1
    return value, end


def memparse(text: str, pos: int = 0) -> tuple[int, int]:
    """Read a size at ``pos`` exactly as the kernel's ``memparse`` does.

    Returns ``(value, end)``; ``end == pos`` means nothing was read. The value wraps
    at 64 bits, as in the kernel.
    """
    value, end = _read_size(text, pos)
    return value & U64_MAX, end


class SizeError(ValueError):
    """A size that pmemd will not accept; ``column`` is the 0-based offset of the fault."""

    def __init__(self, message: str, column: int = 0) -> None:
        super().__init__(message)
        self.column = column


def parse_size(text: str, *, allow_zero: bool = False) -> int:
    """Strictly parse a config size such as ``4G``, ``1536M``, ``0x40000000`` or ``512``."""
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    if not stripped:
        raise SizeError("empty size; write a number with an optional K, M, G, T, P or E suffix")
    if stripped[0] in "+-":
        raise SizeError(f"{quoted(stripped)} is not a size: sizes cannot be signed", lead)
    if stripped[0] == "0" and len(stripped) > 1 and stripped[1] not in "xXkKmMgGtTpPeE":
        raise SizeError(
            f"{quoted(stripped)} has a leading zero, which the kernel reads as octal; "
            "drop the zero (or write hex as 0x…)",
            lead,
        )
    exact, end = _read_size(stripped, 0)
    if end == 0:
        raise SizeError(
            f"{quoted(stripped)} is not a size; write a number with an optional K, M, G, T, P or E "
            "suffix, e.g. 4G",
            lead,
        )
    if end != len(stripped):
        raise SizeError(
            f"{quoted(stripped)} is not a size: unexpected {quoted(stripped[end:])} after "
            f"{quoted(stripped[:end])} (suffixes are K, M, G, T, P, E)",
            lead + end,
        )
    if exact > U64_MAX:
        raise SizeError(f"{quoted(stripped)} does not fit in 64 bits", lead)
    if exact == 0 and not allow_zero:
        raise SizeError("size must be greater than zero", lead)
    return exact


def render_size(value: int) -> str:
    """Canonical form: decimal with the largest unit that divides exactly (``1536M``, ``4G``)."""
    if value < 0 or value > U64_MAX:
        raise ValueError(f"size out of range: {value}")
    if value == 0:
        return "0"
    for unit in _RENDER_UNITS:
        shift = SUFFIX_SHIFT[unit]
        if value % (1 << shift) == 0:
            return f"{value >> shift}{unit}"
    return str(value)


def format_bytes(value: int) -> str:
    """Human form for tables: ``4 GiB``, ``1.5 GiB``, ``639 KiB``, ``512 B``."""
    return _human(value, 1)[0]


def format_compared(value: int, limit: int) -> tuple[str, str]:
    """``value`` and ``limit`` for a message that compares them ("leaving 1.998 GiB; at
    least 2 GiB"): as :func:`format_bytes`, with more digits, and in the end the exact
    bytes, when rounding would make them read as equal (or the wrong way round)."""
    for digits in (1, 2, 3):
        (shown, near), (bound, near_limit) = _human(value, digits), _human(limit, digits)
        if (near > near_limit) is (value > limit) and (near < near_limit) is (value < limit):
            return shown, bound
    return f"{value} bytes", f"{limit} bytes"


def _human(value: int, digits: int) -> tuple[str, float]:
    """``value`` in the largest binary unit it reaches, ``digits`` decimals at most; and
    the number of bytes that text says."""
    for unit, name in zip(_RENDER_UNITS, _HUMAN_UNITS, strict=True):
        scale = 1 << SUFFIX_SHIFT[unit]
        if value >= scale:
            text = f"{value / scale:.{digits}f}".rstrip("0").removesuffix(".")
            return f"{text} {name}", float(text) * scale
    return f"{value} B", float(value)
