"""The memory maps the kernel prints at boot, whatever code printed them and in either
layout: the firmware's table is the first of a boot, later tables are the kernel's edits,
and a map on which memmap= cannot act (a Xen PV guest's) is said to be one."""

from __future__ import annotations

import pytest

from pmemd.core.dmesg import parse_dmesg_e820
from pmemd.core.e820 import E820ParseError, RangeKind
from pmemd.core.ranges import MemRange
from tests.conftest import FIXTURES, run_pmemd

G = 1 << 30
DMESG = FIXTURES / "dmesg"


@pytest.mark.parametrize(("name", "firmware_who", "entries", "edited_who", "persistent"), [
    ("reference-16g.txt", "BIOS-e820", 8, "user", [MemRange(4 * G, 16 * G)]),
    ("qemu-2g-memmap.txt", "BIOS-e820", 10, "user", [MemRange.sized(G, G // 2)]),
    # EFI: the firmware's table, then 'reserve setup_data', 'user' and 'modified'
    ("efi-tables.txt", "BIOS-e820", 9, "modified", [MemRange.sized(16 * G, G)]),
    ("old-kernel.txt", "BIOS-e820", 7, None, []),
])
def test_every_table_of_a_boot_is_read_by_who_printed_it(
        name: str, firmware_who: str, entries: int, edited_who: str | None,
        persistent: list[MemRange]) -> None:
    parsed = parse_dmesg_e820((DMESG / name).read_text())
    assert (parsed.firmware_who, len(parsed.firmware)) == (firmware_who, entries)
    assert parsed.edited_who == edited_who
    found = [e.range for e in parsed.edited or () if e.kind is RangeKind.PERSISTENT_LEGACY]
    assert found == persistent
    assert not any(e.kind is RangeKind.PERSISTENT_LEGACY for e in parsed.firmware)


def test_lines_that_only_look_like_table_lines_are_not_read() -> None:
    """``e820: [mem 0xc0000000-…] available for PCI devices`` and the hibernation code's
    ``nosave memory: [mem …]`` print 8 hex digits; e820 tables print 16."""
    parsed = parse_dmesg_e820((DMESG / "efi-tables.txt").read_text())
    labels = {e.label for e in (*parsed.firmware, *(parsed.edited or ()))}
    assert labels == {"usable", "reserved", "ACPI data", "ACPI NVS", "persistent (type 12)"}
    assert parsed.firmware[-1].range == MemRange(4 * G, 0x480000000)


OLD_XEN_DOMU = """\
BIOS-provided physical RAM map:
 Xen: 0000000000000000 - 00000000000a0000 (usable)
 Xen: 00000000000a0000 - 0000000000100000 (reserved)
 Xen: 0000000000100000 - 0000000040000000 (usable)
"""


@pytest.mark.parametrize(("text", "line"), [
    ((DMESG / "xen-dom0.txt").read_text(), 6),
    (OLD_XEN_DOMU, 2),  # a 2.6 pvops guest, the old layout
])
def test_a_xen_pv_map_says_memmap_cannot_act_on_it(text: str, line: int) -> None:
    with pytest.raises(E820ParseError) as caught:
        parse_dmesg_e820(text)
    assert "Xen PV guest" in str(caught.value)
    assert "memmap= cannot reserve" in str(caught.value)
    assert caught.value.line == line


def test_the_old_layout_names_unknown_types_by_number() -> None:
    text = (" BIOS-e820: 0000000000000000 - 000000000009fc00 (usable)\n"
            " BIOS-e820: 000000000009fc00 - 00000000000a0000 (ACPI NVS)\n"
            " BIOS-e820: 0000000000100000 - 0000000080000000 (usable)\n"
            " BIOS-e820: 0000000080000000 - 0000000080100000 type 20\n")
    parsed = parse_dmesg_e820(text)
    assert [(e.kind, e.label) for e in parsed.firmware[1:4:2]] == [
        (RangeKind.ACPI_NVS, "ACPI NVS"), (RangeKind.OTHER, "type 20")]
    assert parsed.firmware[-1].range == MemRange(0x80000000, 0x80100000)


def test_only_the_edited_map_names_what_is_missing() -> None:
    text = "[    0.000000] user: [mem 0x0000000000000000-0x000000000009fbff] usable\n"
    with pytest.raises(E820ParseError, match="only the kernel's edited map was found "
                                             r"\('user:' lines\)") as caught:
        parse_dmesg_e820(text)
    assert caught.value.line == 1


def test_pmemd_memmap_on_a_xen_dom0_says_why_not() -> None:
    path = DMESG / "xen-dom0.txt"
    done = run_pmemd("memmap", "--dmesg", str(path))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"pmemd: {path}:6: this is the memory map of a Xen PV guest")
    assert "no 'BIOS-e820:' lines" not in done.stderr


def test_pmemd_memmap_reads_the_last_table_of_an_efi_boot() -> None:
    done = run_pmemd("memmap", "--dmesg", str(DMESG / "efi-tables.txt"))
    assert done.returncode == 0, done.stderr
    assert "Persistent memory on this boot (" in done.stdout
    assert "efi-tables.txt (modified)): 0x400000000-0x43fffffff (1 GiB)" in done.stdout
    assert "available for PCI" not in done.stdout
    assert done.stderr == ""
