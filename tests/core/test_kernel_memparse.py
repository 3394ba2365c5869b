"""memmap= read exactly as the kernel reads it: ``memparse`` (lib/cmdline.c) on
``simple_strtoull(s, &end, 0)`` (lib/vsprintf.c, lib/kstrtox.c: ASCII digits only, ``0x``
hex when a hex digit follows, a leading ``0`` octal, wrapping at 64 bits) and one optional
K/M/G/T/P/E suffix in either case — consumed even after no digits — and
``parse_memmap_one`` (arch/x86/kernel/e820.c)."""

from __future__ import annotations

import pytest

from pmemd.core.cmdline import parse_cmdline
from pmemd.core.memmap import MemmapKind, parse_memmap_item, reserved_ranges
from pmemd.core.ranges import MemRange

K, M, G = 1 << 10, 1 << 20, 1 << 30
E = 1 << 60


@pytest.mark.parametrize(("text", "kind", "size", "start", "junk"), [
    # full-width and other non-ASCII digits are not digits to the kernel
    ("\uff14G!12G", MemmapKind.INVALID, 0, None, "\uff14G!12G"),
    ("4G!\uff11\uff12G", MemmapKind.PERSISTENT, 4 * G, 0, "\uff11\uff12G"),
    ("\u0664G!12G", MemmapKind.INVALID, 0, None, "\u0664G!12G"),  # Arabic-Indic four
    ("4G!1\u00b2G", MemmapKind.PERSISTENT, 4 * G, 1, "\u00b2G"),  # superscript two
    # a suffix without digits is still read (value 0): "K" alone limits RAM to 0 bytes
    ("K", MemmapKind.LIMIT, 0, None, ""),
    ("k!12G", MemmapKind.PERSISTENT, 0, 12 * G, ""),
    # bases as simple_strtoull picks them
    ("0x40000000!0X80000000", MemmapKind.PERSISTENT, G, 2 * G, ""),
    ("010M!1G", MemmapKind.PERSISTENT, 8 * M, G, ""),  # octal
    ("08M!1G", MemmapKind.LIMIT, 0, None, "8M!1G"),  # "0" then 8 is no octal digit
    ("0x!1G", MemmapKind.LIMIT, 0, None, "x!1G"),  # 0x without a hex digit: octal "0"
    ("0xg", MemmapKind.LIMIT, 0, None, "xg"),
    # suffixes, either case, one only
    ("1g!4g", MemmapKind.PERSISTENT, G, 4 * G, ""),
    ("1t!0", MemmapKind.PERSISTENT, 1 << 40, 0, ""),
    ("2p!1e", MemmapKind.PERSISTENT, 2 << 50, E, ""),
    ("1GG!4G", MemmapKind.LIMIT, G, None, "G!4G"),
    ("1KB!4G", MemmapKind.LIMIT, K, None, "B!4G"),
    # 64-bit wrap, as the kernel's unsigned long long
    ("16E!0", MemmapKind.PERSISTENT, 0, 0, ""),
    ("18446744073709551617!0", MemmapKind.PERSISTENT, 1, 0, ""),
    # nn%ss-t+t: the kernel returns before applying anything when junk follows
    ("1G%4G-1+12", MemmapKind.RETYPE, G, 4 * G, ""),
    ("1G%4G-1K+12", MemmapKind.INVALID, 0, None, "1G%4G-1K+12"),
    ("1G%4G+12x", MemmapKind.INVALID, 0, None, "1G%4G+12x"),
    # signs are not digits
    ("-1G!4G", MemmapKind.INVALID, 0, None, "-1G!4G"),
    ("+1G!4G", MemmapKind.INVALID, 0, None, "+1G!4G"),
    ("1G!-4G", MemmapKind.PERSISTENT, G, 0, "-4G"),
])
def test_items_are_read_as_parse_memmap_one_reads_them(text: str, kind: MemmapKind, size: int,
                                                       start: int | None, junk: str) -> None:
    item = parse_memmap_item(text)
    assert (item.kind, item.size, item.start, item.junk) == (kind, size, start, junk)


@pytest.mark.parametrize(("cmdline", "reserved"), [
    ("memmap=\uff14G!12G", set()),  # the kernel ignores it: not "applied"
    ("memmap=4G!\uff11\uff12G", set()),  # the kernel reserves 4G at 0, not at 12G
    ("memmap=4G!12G", {MemRange.sized(12 * G, 4 * G)}),
    ("memmap=4g!0xc0000000", {MemRange.sized(0xC0000000, 4 * G)}),
])
def test_only_what_the_kernel_reads_counts_as_applied(cmdline: str,
                                                      reserved: set[MemRange]) -> None:
    assert reserved_ranges(parse_cmdline(cmdline)) == reserved
