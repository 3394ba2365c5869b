"""(pure) Numbers as the kernel writes them in the files pmemd reads, read strictly.

The kernel prints addresses and sizes as unsigned 64-bit values: ``0x%llx`` (the firmware
map), ``%#llx`` (nvdimm ``resource``: ``0`` for zero), ``%llu`` (sizes). Anything else in
such a file (a sign, ``_`` separators, non-ASCII digits, more than 64 bits) is not the
kernel's writing, and reading it as a number would make up a range."""

from __future__ import annotations

from pmemd.core.visible import visible

U64_MAX = (1 << 64) - 1
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
DEC_DIGITS = frozenset("0123456789")
_LONGEST = 64  # characters; longer texts are not looked at (and never converted)


class U64Error(ValueError):
    """Not an unsigned 64-bit number as the kernel prints one; the message says why."""


def _shown(text: str) -> str:
    """``text`` quoted for a message, escaped and cut."""
    return f"'{visible(text, _LONGEST)}'"


def _digits(digits: str, allowed: frozenset[str], text: str, what: str) -> None:
    if not digits or any(c not in allowed for c in digits):
        raise U64Error(f"{_shown(text)} is not {what}")


def _bounded(value: int, text: str) -> int:
    if value > U64_MAX:
        raise U64Error(f"{_shown(text)} does not fit in 64 bits (the kernel's addresses and "
                       "sizes are unsigned 64-bit numbers)")
    return value


def parse_hex_u64(text: str, *, prefix: bool) -> int:
    """Hexadecimal, with a ``0x`` prefix (``prefix``, as ``0x%llx`` and ``%#llx`` print it;
    a lone ``0`` is how ``%#llx`` prints zero) or without (``/proc/iomem``)."""
    stripped = text.strip()
    digits = stripped
    if prefix and stripped != "0":
        if stripped[:2] not in ("0x", "0X"):
            raise U64Error(f"{_shown(stripped)} is not a hexadecimal number (0x…)")
        digits = stripped[2:]
    _digits(digits, HEX_DIGITS, stripped, "a hexadecimal number")
    if len(digits.lstrip("0")) > 16:
        return _bounded(U64_MAX + 1, stripped)
    return _bounded(int(digits, 16), stripped)


def parse_dec_u64(text: str) -> int:
    """Decimal, as ``%llu`` prints it."""
    stripped = text.strip()
    _digits(stripped, DEC_DIGITS, stripped, "a decimal number")
    if len(stripped.lstrip("0")) > 20:
        return _bounded(U64_MAX + 1, stripped)
    return _bounded(int(stripped), stripped)
