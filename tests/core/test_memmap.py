"""memmap= items as the kernel reads them, safe rendering, and the three e820 sources."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pmemd.core.cmdline import parse_cmdline
from pmemd.core.dmesg import parse_dmesg_e820
from pmemd.core.e820 import (
    E820ParseError,
    RangeKind,
    SysfsMemmapEntry,
    parse_iomem,
    parse_sysfs_memmap,
)
from pmemd.core.memmap import (
    MemmapKind,
    UnsafeMemmapError,
    explain_item,
    memmap_args,
    parse_memmap_item,
    parse_memmap_value,
    render_memmap_arg,
    reserved_ranges,
)
from pmemd.core.ranges import MemRange, subtract
from tests.conftest import FIXTURES

M, G = 1 << 20, 1 << 30


@pytest.mark.parametrize(("text", "kind", "size", "start", "junk"), [
    ("4G!12G", MemmapKind.PERSISTENT, 4 * G, 12 * G, ""),
    ("512M!0x40000000", MemmapKind.PERSISTENT, 512 * M, G, ""),
    ("1G@4G", MemmapKind.RAM, G, 4 * G, ""),
    ("64K#0x1000", MemmapKind.ACPI, 64 << 10, 0x1000, ""),
    ("16M$0x2000000", MemmapKind.RESERVED, 16 * M, 0x2000000, ""),
    ("1G%4G-1+12", MemmapKind.RETYPE, G, 4 * G, ""),
    ("exactmap", MemmapKind.EXACTMAP, 0, None, ""),
    ("2G", MemmapKind.LIMIT, 2 * G, None, ""),
    # The seed's trap: a shell backslash turns the item into "keep only 512M of RAM".
    ("512M\\!1G", MemmapKind.LIMIT, 512 * M, None, "\\!1G"),
    ("4G!12G junk", MemmapKind.PERSISTENT, 4 * G, 12 * G, " junk"),
    ("4G!", MemmapKind.PERSISTENT, 4 * G, 0, ""),  # the kernel reads a missing start as 0
    ("4G!12GB", MemmapKind.PERSISTENT, 4 * G, 12 * G, "B"),
    ("", MemmapKind.INVALID, 0, None, ""),
    ("!12G", MemmapKind.INVALID, 0, None, "!12G"),
])
def test_items_parse_as_the_kernel_does(text: str, kind: MemmapKind, size: int,
                                        start: int | None, junk: str) -> None:
    item = parse_memmap_item(text)
    assert (item.kind, item.size, item.start) == (kind, size, start)
    if kind is not MemmapKind.INVALID:
        assert item.junk == junk


def test_comma_lists_are_separate_ranges() -> None:
    items = parse_memmap_value("2G!12G,2G!14G")
    assert [i.range for i in items] == [MemRange.sized(12 * G, 2 * G),
                                        MemRange.sized(14 * G, 2 * G)]


def test_memmap_args_ignores_arguments_passed_to_init() -> None:
    cmdline = parse_cmdline("ro memmap=4G!12G quiet -- memmap=1G!1G")
    args = memmap_args(cmdline)
    assert [a.text for a in args] == ["memmap=4G!12G"]


@pytest.mark.parametrize(("rng", "text"), [
    (MemRange.sized(12 * G, 4 * G), "memmap=4G!12G"),
    (MemRange.sized(G, 512 * M), "memmap=512M!1G"),
    (MemRange.sized(0x60000000, 256 * M), "memmap=256M!1536M"),
    (MemRange.sized(0, 2 * M), "memmap=2M!0"),
])
def test_render_memmap_arg(rng: MemRange, text: str) -> None:
    assert render_memmap_arg(rng) == text


def test_render_refuses_an_empty_range() -> None:
    with pytest.raises(UnsafeMemmapError):
        render_memmap_arg(MemRange(G, G))


@given(st.integers(min_value=1, max_value=1 << 40), st.integers(min_value=0, max_value=1 << 44))
def test_every_rendered_argument_reads_back_exactly(size: int, start: int) -> None:
    rng = MemRange.sized(start, size)
    text = render_memmap_arg(rng)
    assert "\\" not in text and '"' not in text and " " not in text
    (item,) = parse_memmap_value(text.removeprefix("memmap="))
    assert item.kind is MemmapKind.PERSISTENT and item.clean and item.range == rng


def test_explain_a_misparsed_item_says_what_was_applied() -> None:
    text = explain_item(parse_memmap_item("512M\\!1G"))
    assert "limits usable RAM to the first 512M" in text
    assert "already applied '512M'" in text


# --- e820 sources -------------------------------------------------------------------------


def test_sysfs_entries_are_sorted_and_typed() -> None:
    entries = parse_sysfs_memmap([
        SysfsMemmapEntry("1", "0x100000000\n", "0x3ffffffff\n", "System RAM\n"),
        SysfsMemmapEntry("0", "0x0", "0x9fbff", "System RAM"),
        SysfsMemmapEntry("2", "0x9fc00", "0x9ffff", "Reserved"),
        SysfsMemmapEntry("3", "0xfed1c000", "0xfed1ffff", "ACPI Non-volatile Storage"),
        SysfsMemmapEntry("4", "0xa0000000", "0xafffffff", "Persistent Memory (legacy)"),
        SysfsMemmapEntry("5", "0xb0000000", "0xbfffffff", "Soft Reserved"),
        SysfsMemmapEntry("6", "0xc0000000", "0xcfffffff", "Something New"),
    ])
    assert [e.range.start for e in entries] == sorted(e.range.start for e in entries)
    kinds = {e.label: e.kind for e in entries}
    assert kinds == {
        "System RAM": RangeKind.USABLE, "Reserved": RangeKind.RESERVED,
        "ACPI Non-volatile Storage": RangeKind.ACPI_NVS,
        "Persistent Memory (legacy)": RangeKind.PERSISTENT_LEGACY,
        "Soft Reserved": RangeKind.SOFT_RESERVED, "Something New": RangeKind.OTHER,
    }
    assert entries[-1].range == MemRange(0x100000000, 0x400000000)


@pytest.mark.parametrize(("entry", "message"), [
    (SysfsMemmapEntry("0", "zero", "0x9fbff", "System RAM"), "is not a hexadecimal"),
    (SysfsMemmapEntry("0", "0x9fbff", "0x0", "System RAM"), "is below start"),
])
def test_sysfs_bad_entries(entry: SysfsMemmapEntry, message: str) -> None:
    with pytest.raises(E820ParseError, match=message):
        parse_sysfs_memmap([entry])


IOMEM = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
00100000-bffdffff : System RAM
  1a000000-1b002fff : Kernel code
  1b200000-1bc2dfff : Kernel rodata
  1be00000-1c1b0b7f : Kernel data
  1c6e7000-1cbfffff : Kernel bss
c0000000-febfffff : PCI Bus 0000:00
  fd000000-fdffffff : 0000:00:02.0
100000000-2ffffffff : System RAM
300000000-3ffffffff : Persistent Memory (legacy)
  300000000-3ffffffff : namespace0.0
"""


def test_iomem_tree_gives_the_edited_map_and_the_kernel_image() -> None:
    found = parse_iomem(IOMEM)
    assert found is not None
    persistent = [e for e in found.entries if e.kind is RangeKind.PERSISTENT_LEGACY]
    assert [e.range for e in persistent] == [MemRange(0x300000000, 0x400000000)]
    assert not any(e.label.startswith("PCI") for e in found.entries)
    # nested resources (the namespace inside the pmem range) are not map entries
    assert not any(e.label == "namespace0.0" for e in found.entries)
    assert found.kernel_image[0] == MemRange(0x1A000000, 0x1B003000)
    assert len(found.kernel_image) == 4


def test_iomem_read_without_root_is_unknown() -> None:
    hidden = "00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n" \
             "  00000000-00000000 : Kernel code\n"
    assert parse_iomem(hidden) is None


def test_iomem_garbage_names_the_line() -> None:
    with pytest.raises(E820ParseError) as caught:
        parse_iomem("00000000-00000fff : Reserved\nthis is not iomem\n")
    assert caught.value.line == 2


def test_dmesg_reference_procedure() -> None:
    parsed = parse_dmesg_e820((FIXTURES / "dmesg/reference-16g.txt").read_text())
    assert len(parsed.firmware) == 8
    assert parsed.firmware[-1].range == MemRange(0x100000000, 0x400000000)
    assert parsed.firmware[-1].kind is RangeKind.USABLE
    assert parsed.edited is not None
    assert parsed.edited[-1].kind is RangeKind.PERSISTENT_LEGACY


def test_dmesg_with_timestamps_and_other_e820_lines() -> None:
    parsed = parse_dmesg_e820((FIXTURES / "dmesg/qemu-2g-memmap.txt").read_text())
    assert len(parsed.firmware) == 10
    assert parsed.edited is not None
    persistent = [e.range for e in parsed.edited if e.kind is RangeKind.PERSISTENT_LEGACY]
    assert persistent == [MemRange.sized(G, 512 * M)]


def test_dmesg_old_format_has_exclusive_ends() -> None:
    parsed = parse_dmesg_e820((FIXTURES / "dmesg/old-kernel.txt").read_text())
    assert parsed.firmware[0].range == MemRange(0, 0x9FC00)
    assert parsed.firmware[-1].range == MemRange(0x100000000, 0x220000000)
    assert parsed.edited is None


def test_dmesg_with_two_boots_uses_the_last() -> None:
    parsed = parse_dmesg_e820((FIXTURES / "dmesg/journal-two-boots.txt").read_text())
    assert len(parsed.firmware) == 5
    assert parsed.firmware[-1].range.end == 0x240000000


@pytest.mark.parametrize(("name", "message"), [
    ("malformed.txt", "empty or reversed range"),
])
def test_dmesg_bad_input(name: str, message: str) -> None:
    with pytest.raises(E820ParseError, match=message) as caught:
        parse_dmesg_e820((FIXTURES / "dmesg" / name).read_text())
    assert caught.value.line == 1


def test_dmesg_without_e820_lines() -> None:
    with pytest.raises(E820ParseError, match="no 'BIOS-e820:' lines"):
        parse_dmesg_e820("[    0.000000] Linux version 6.1.0\n")


@pytest.mark.parametrize(("ranges", "taken", "left"), [
    ([MemRange(0, 100)], [MemRange(20, 30)], [MemRange(0, 20), MemRange(30, 100)]),
    ([MemRange(0, 100)], [MemRange(0, 100)], []),
    ([MemRange(0, 100)], [MemRange(90, 200)], [MemRange(0, 90)]),
    ([MemRange(0, 10), MemRange(20, 30)], [MemRange(5, 25)],
     [MemRange(0, 5), MemRange(25, 30)]),
    ([MemRange(0, 10)], [MemRange(10, 20)], [MemRange(0, 10)]),
])
def test_subtract(ranges: list[MemRange], taken: list[MemRange], left: list[MemRange]) -> None:
    assert list(subtract(ranges, taken)) == left


# "Is this region's option on this command line": one answer, for the plan and for finding
# a region's device (they disagreed: one counted any clean item with a range).
@pytest.mark.parametrize(("cmdline", "reserved"), [
    ("ro memmap=4G!12G", {MemRange.sized(12 * G, 4 * G)}),
    ("memmap=0x100000000!0x300000000", {MemRange.sized(12 * G, 4 * G)}),  # another spelling
    ('"memmap=4G!12G"', {MemRange.sized(12 * G, 4 * G)}),  # quoted: the kernel unquotes it
    ("memmap=1G!4G,2G!8G", {MemRange.sized(4 * G, G), MemRange.sized(8 * G, 2 * G)}),
    ("memmap=4G@12G memmap=4G$12G memmap=4G#12G", set()),  # RAM, reserved, ACPI: not pmem
    ("memmap=4G\\!12G", set()),  # misread by the kernel (a stray backslash): nothing
    ("memmap=4G!12Gx", set()),  # junk after it: the kernel reserved it, but not as written
    ("ro -- memmap=4G!12G", set()),  # init's argument, not the kernel's
])
def test_the_ranges_a_command_line_reserves(cmdline: str, reserved: set[MemRange]) -> None:
    assert reserved_ranges(parse_cmdline(cmdline)) == reserved
