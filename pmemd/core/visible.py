"""(pure) Text from outside (a pasted log, a sysfs file) made safe to print: every
character a terminal would act on instead of show (escape sequences, other control
characters, bidirectional overrides, undecodable bytes) is written as an escape, so what
pmemd prints is exactly what a reader sees. Imports nothing."""

from __future__ import annotations

_SURROGATE_BYTES = range(0xDC80, 0xDD00)  # bytes that were not UTF-8 (surrogateescape)


def _escape(char: str) -> str:
    code = ord(char)
    if code in _SURROGATE_BYTES:
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str, limit: int | None = None) -> str:
    """``text`` with backslashes doubled and every unprintable character escaped
    (``\\x1b``, ``\\u202e``); longer than ``limit`` characters, cut and ended with ``…``."""
    long = limit is not None and len(text) > limit
    cut = text[:limit] if long else text
    out = "".join(c if c.isprintable() and c != "\\" else
                  "\\\\" if c == "\\" else _escape(c) for c in cut)
    return out + "…" if long else out
