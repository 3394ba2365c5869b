"""A broken firmware map read as the kernel reads it (sorted, overlaps resolved by the
higher type, neighbours of one type merged), with what was odd said — never trusted as
written: no region in reserved memory, no usable RAM counted twice, no escape sequence
from a pasted type on the terminal."""

from __future__ import annotations

import shutil
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmemd.core.e820 import E820Entry, RangeKind, e820_type, kind_from_label
from pmemd.core.e820_table import normalise
from pmemd.core.ranges import MemRange
from tests.conftest import FIXTURES, MACHINES, run_pmemd

M, G = 1 << 20, 1 << 30


def entry(start: int, end: int, label: str) -> E820Entry:
    return E820Entry(MemRange(start, end), kind_from_label(label), label)


@pytest.mark.parametrize(("given_entries", "expected", "odd"), [
    # reserved inside usable: the usable range is cut around it
    ([entry(0, 100, "usable"), entry(40, 60, "reserved")],
     [entry(0, 40, "usable"), entry(40, 60, "reserved"), entry(60, 100, "usable")],
     "read as reserved"),
    # ACPI NVS (4) over reserved (2)
    ([entry(0, 100, "reserved"), entry(50, 150, "ACPI NVS")],
     [entry(0, 50, "reserved"), entry(50, 150, "ACPI NVS")], "read as ACPI NVS"),
    # the same entry twice counts once
    ([entry(0, 100, "usable"), entry(0, 100, "usable")], [entry(0, 100, "usable")],
     "listed 2 times"),
    # out of order: sorted
    ([entry(100, 200, "usable"), entry(0, 100, "reserved")],
     [entry(0, 100, "reserved"), entry(100, 200, "usable")], "not in address order"),
    # neighbours of one type merge, but type 12 and soft reserved stay apart
    ([entry(0, 100, "usable"), entry(100, 200, "usable")], [entry(0, 200, "usable")],
     "adjacent"),
    ([entry(0, 100, "persistent (type 12)"), entry(100, 200, "persistent (type 12)")],
     [entry(0, 100, "persistent (type 12)"), entry(100, 200, "persistent (type 12)")], None),
    # a type pmemd does not know is never usable
    ([entry(0, 100, "usable"), entry(20, 30, "Something New")],
     [entry(0, 20, "usable"), entry(20, 30, "Something New"), entry(30, 100, "usable")],
     "read as Something New"),
    # a sane map is left as it is, and nothing is said
    ([entry(0, 100, "usable"), entry(100, 200, "reserved")],
     [entry(0, 100, "usable"), entry(100, 200, "reserved")], None),
])
def test_the_map_is_read_as_the_kernel_reads_it(given_entries: list[E820Entry],
                                                expected: list[E820Entry],
                                                odd: str | None) -> None:
    table = normalise(given_entries)
    assert list(table.entries) == expected
    if odd is None:
        assert table.oddities == ()
    else:
        assert any(odd in text for text in table.oddities), table.oddities


LABELS = ["usable", "reserved", "ACPI data", "ACPI NVS", "unusable", "persistent (type 7)",
          "persistent (type 12)", "soft reserved", "type 9"]
entries_strategy = st.lists(
    st.builds(lambda start, size, label: entry(start, start + size, label),
              st.integers(0, 60), st.integers(1, 20), st.sampled_from(LABELS)),
    max_size=12)


@settings(max_examples=300, deadline=None)
@given(entries_strategy)
def test_every_address_gets_the_highest_type_that_claims_it(given_entries: list[E820Entry]
                                                           ) -> None:
    table = normalise(given_entries)
    out = table.entries
    assert all(a.range.end <= b.range.start for a, b in pairwise(out))
    for address in range(0, 81):
        claims = [e820_type(e) for e in given_entries if e.range.start <= address < e.range.end]
        found = [e820_type(e) for e in out if e.range.start <= address < e.range.end]
        assert found == ([max(claims)] if claims else [])
    # merged: no two neighbours of one mergeable type
    for a, b in pairwise(out):
        if a.range.end == b.range.start and e820_type(a) == e820_type(b):
            assert a.kind in (RangeKind.PERSISTENT_LEGACY, RangeKind.SOFT_RESERVED)


def test_an_overlapping_paste_places_nothing_in_reserved_memory() -> None:
    done = run_pmemd("memmap", "--dmesg", str(FIXTURES / "dmesg/overlapping.txt"))
    assert done.returncode == 0, done.stderr
    assert "Usable RAM: 15 GiB in 4 ranges" in done.stdout
    assert "0x0000000200000000  0x00000002000fffff  1 MiB    reserved" in done.stdout
    # the largest candidate starts above the reserved MiB, aligned
    assert "0x208000000-0x3ffffffff  7.9 GiB  memmap=8064M!8320M" in done.stdout
    assert "memmap=12G!4G" not in done.stdout
    assert "listed 2 times" in done.stderr
    assert "0x200000000-0x2000fffff: claimed by 2 entries (usable and reserved); read as " \
           "reserved" in done.stderr
    assert done.stderr.startswith("warning: ")


def test_an_unsorted_paste_is_one_map() -> None:
    unsorted = run_pmemd("memmap", "--dmesg", str(FIXTURES / "dmesg/unsorted.txt"))
    assert unsorted.returncode == 0, unsorted.stderr
    assert "Usable RAM: 15 GiB in 3 ranges" in unsorted.stdout
    assert "0x100000000-0x3ffffffff  12 GiB   memmap=12G!4G" in unsorted.stdout
    assert "not in address order" in unsorted.stderr


def test_the_sysfs_map_with_an_overlap_counts_ram_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(MACHINES / "server-16g", root, symlinks=True)
    extra = root / "sys/firmware/memmap/8"
    extra.mkdir()
    (extra / "start").write_text("0x100000000\n")
    (extra / "end").write_text("0x3ffffffff\n")
    (extra / "type").write_text("System RAM\n")
    done = run_pmemd("memmap", "--root", str(root))
    assert done.returncode == 0, done.stderr
    assert "Usable RAM: 15 GiB in" in done.stdout
    assert "listed 2 times" in done.stderr


def test_escape_sequences_in_a_pasted_type_never_reach_the_terminal(tmp_path: Path) -> None:
    paste = tmp_path / "dmesg.txt"
    paste.write_bytes(
        b"BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable\n"
        b"BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] \x1b]0;owned\x07\x1b[2J\n"
        b"BIOS-e820: [mem 0x0000000000100000-0x000000003fffffff] usable\xe2\x80\xae\x9b31m\n")
    done = run_pmemd("memmap", "--dmesg", str(paste))
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    assert not any(c in text for c in "\x1b\x07\x9b\u202e")
    assert "\\x1b]0;owned\\x07\\x1b[2J" in done.stdout
