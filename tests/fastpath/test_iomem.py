"""The one reader of /proc/iomem (pmemd.fastpath.iomem): lines, depths, hidden addresses,
and the two questions asked of it (this boot's legacy pmem ranges; the kernel image)."""

from __future__ import annotations

import pytest

from pmemd.fastpath.iomem import (
    LEGACY_PMEM,
    IomemFormatError,
    kernel_image,
    parse_iomem,
    top_level,
)

# From the end-to-end guest booted with memmap=512M!1G (examples/machines/
# qemu-2g-memmap-captured), cut down.
IOMEM = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
00100000-3fffffff : System RAM
  0e000000-0ec02866 : Kernel code
  0ee00000-0f235fff : Kernel rodata
  0f400000-0f5e26bf : Kernel data
  0fb3a000-0fdfffff : Kernel bss
40000000-5fffffff : Persistent Memory (legacy)
  40000000-5fffffff : namespace0.0
60000000-7ffdffff : System RAM
"""


def test_lines_become_depth_start_end_name() -> None:
    resources = parse_iomem(IOMEM)
    assert resources is not None
    assert resources[0] == (0, 0x0, 0x1000, "Reserved")
    assert resources[3] == (1, 0x0E000000, 0x0EC02867, "Kernel code")
    assert resources[8] == (1, 0x40000000, 0x60000000, "namespace0.0")


def test_top_level_ranges_by_name_never_their_children() -> None:
    resources = parse_iomem(IOMEM)
    assert resources is not None
    assert top_level(resources, LEGACY_PMEM) == [(0x40000000, 0x60000000)]
    assert top_level(resources, "namespace0.0") == []


def test_the_kernel_image_is_its_four_parts() -> None:
    resources = parse_iomem(IOMEM)
    assert resources is not None
    assert kernel_image(resources) == [(0x0E000000, 0x0EC02867), (0x0EE00000, 0x0F236000),
                                       (0x0F400000, 0x0F5E26C0), (0x0FB3A000, 0x0FE00000)]


@pytest.mark.parametrize("text", [
    "00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n"
    "  00000000-00000000 : Kernel code\n",  # what anyone but root reads
    "",
])
def test_hidden_addresses_are_no_map(text: str) -> None:
    assert parse_iomem(text) is None


@pytest.mark.parametrize(("text", "line"), [
    ("00000000-00000fff : Reserved\nthis is not iomem\n", 2),
    ("00000000-00000fff Reserved\n", 1),  # no " : "
    ("0000zz00-00000fff : Reserved\n", 1),
    (" 00000000-00000fff : odd indent\n", 1),
])
def test_a_bad_line_is_named(text: str, line: int) -> None:
    with pytest.raises(IomemFormatError) as caught:
        parse_iomem(text)
    assert caught.value.line == line
