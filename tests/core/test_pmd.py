"""PMD or 4 KiB faults, from the kernel's fs_dax trace lines: the lines below were captured in
the test guest (Debian 12, Linux 6.1.0-57, TCG) while a mapping of a file on an ext4 DAX
mount was touched once per 2 MiB."""

from __future__ import annotations

import pytest

from pmemd.core.devices import DeviceState, RegionDevice
from pmemd.core.mounts import MountEntry
from pmemd.core.pmd import (
    Fault,
    PmdCheck,
    PmdResult,
    apply_pmd_check,
    count_faults,
    decide_pmd,
    parse_check,
    parse_fault,
    parse_faults,
)
from pmemd.core.ranges import MemRange

SERVED = ("           <...>-375     [001] .....    51.113427: dax_pmd_fault_done: dev 259:0 "
          "ino 0xc shared WRITE|ALLOW_RETRY|KILLABLE|USER|INTERRUPTIBLE address 0x7f7586a00000 "
          "vm_start 0x7f7586a00000 vm_end 0x7f7586e00000 pgoff 0x0 max_pgoff 0x400 NOPAGE")
SERVED_2 = ("           <...>-375     [001] .....    51.126610: dax_pmd_fault_done: dev 259:0 "
            "ino 0xc shared WRITE|ALLOW_RETRY|KILLABLE|USER|INTERRUPTIBLE address "
            "0x7f7586c00000 vm_start 0x7f7586a00000 vm_end 0x7f7586e00000 pgoff 0x200 "
            "max_pgoff 0x400 NOPAGE")
FELL_BACK = ("           <...>-403     [001] .....    78.268635: dax_pmd_fault_done: dev 259:0 "
             "ino 0xc shared WRITE|ALLOW_RETRY|KILLABLE|USER|INTERRUPTIBLE address "
             "0x7f5034a00000 vm_start 0x7f5034a00000 vm_end 0x7f5034e00000 pgoff 0x0 "
             "max_pgoff 0x400 FALLBACK")
PTE = ("           <...>-403     [001] .....    78.269298: dax_pte_fault_done: dev 259:0 "
       "ino 0xc shared WRITE|ALLOW_RETRY|KILLABLE|USER|INTERRUPTIBLE address 0x7f5034a00000 "
       "pgoff 0x0 NOPAGE")
PTE_MAJOR = ("           <...>-403     [001] .....    78.276658: dax_pte_fault_done: dev 259:0 "
             "ino 0xc shared WRITE|ALLOW_RETRY|KILLABLE|USER|INTERRUPTIBLE|0x800 address "
             "0x7f5034a01000 pgoff 0x1 MAJOR|NOPAGE")
HEADER = "# tracer: nop\n#\n# entries-in-buffer/entries-written: 2/2   #P:2\n"


@pytest.mark.parametrize(("line", "fault"), [
    (SERVED, Fault(375, True, "259:0", 0xc, 0x7f7586a00000, ("NOPAGE",))),
    (FELL_BACK, Fault(403, True, "259:0", 0xc, 0x7f5034a00000, ("FALLBACK",))),
    (PTE, Fault(403, False, "259:0", 0xc, 0x7f5034a00000, ("NOPAGE",))),
    (PTE_MAJOR, Fault(403, False, "259:0", 0xc, 0x7f5034a01000, ("MAJOR", "NOPAGE"))),
    ("  python3-812  [000] d..1.  9.1: dax_pmd_fault_done: dev 8:1 ino 0 private  address "
     "0x200000 vm_start 0x0 vm_end 0x400000 pgoff 0x0 max_pgoff 0x3ff FALLBACK",
     Fault(812, True, "8:1", 0, 0x200000, ("FALLBACK",))),
    ("# tracer: nop", None),
    ("  <...>-1 [000] ..... 1.0: dax_pmd_load_hole: dev 259:0 ino 0xc shared address "
     "0x7f0000000000 vm_start 0x7f0000000000 vm_end 0x7f0000400000 pgoff 0x0 max_pgoff 0x400 "
     "zero_page 0x0 radix_entry 0x0", None),
])
def test_a_trace_line_is_a_fault_or_nothing(line: str, fault: Fault | None) -> None:
    assert parse_fault(line) == fault


def judge(text: str, *, inode: int = 0xc, address: int = 0x7f7586a00000) -> PmdCheck:
    return decide_pmd(parse_faults(text), region="scratch", mountpoint="/pmem-scratch",
                      fstype="ext4", dev="259:0", inode=inode, address=address)


def test_faults_served_by_2_mib_pages_are_pmd() -> None:
    found = judge(HEADER + f"{SERVED}\n{SERVED_2}\n")
    assert (found.result, found.pmd_faults, found.pte_faults) == (PmdResult.PMD, 2, 0)
    assert not found.degraded
    assert found.reason == ("/pmem-scratch: mappings are served by 2 MiB faults "
                            "(2 fs_dax:dax_pmd_fault_done NOPAGE)")


def test_a_fault_that_fell_back_degrades_the_mount_and_says_how_to_make_it() -> None:
    found = judge(f"{FELL_BACK}\n{PTE}\n{PTE_MAJOR}\n", address=0x7f5034a00000)
    assert (found.result, found.pmd_faults, found.pte_faults) == (PmdResult.FALLBACK, 1, 2)
    assert found.degraded
    assert found.reason == (
        "/pmem-scratch: a 2 MiB-aligned mapping of a file fell back to 4 KiB faults "
        "(fs_dax:dax_pmd_fault_done FALLBACK): the filesystem's allocation is not 2 MiB "
        "aligned; make it with mkfs.ext4 -b 4096 -E stride=512,stripe_width=512 "
        "(as pmemd does)")


@pytest.mark.parametrize(("text", "inode", "address", "why"), [
    ("", 0xc, 0x7f7586a00000, "no fs_dax:dax_pmd_fault_done event was traced"),
    (SERVED, 0xd, 0x7f7586a00000, "no fs_dax:dax_pmd_fault_done event was traced"),
    (SERVED, 0xc, 0x7f7586a01000, "the probe's mapping at 0x7f7586a01000 is not 2 MiB aligned"),
])
def test_a_probe_that_saw_nothing_of_its_own_checks_nothing(
        text: str, inode: int, address: int, why: str) -> None:
    found = judge(text, inode=inode, address=address)
    assert found.result is PmdResult.UNCHECKED and not found.degraded
    assert found.reason.startswith("PMD faults not checked: ") and why in found.reason


def test_the_record_reads_back_and_junk_is_no_record() -> None:
    found = judge(FELL_BACK, address=0x7f5034a00000)
    assert parse_check(found.render()) == found
    assert parse_check("") is None and parse_check('{"region": "x"}') is None


def test_fault_counts_for_the_benchmark() -> None:
    faults = parse_faults(f"{SERVED}\n{FELL_BACK}\n{PTE}\n{PTE_MAJOR}\n")
    assert count_faults(faults) == {"pmd": 1, "pmd_fallback": 1, "pte": 2}


MOUNT = MountEntry("259:0", "/pmem-scratch", "ext4", "/dev/pmem0", ("rw",), ("dax=always",))
READY = RegionDevice("scratch", MemRange(0x60000000, 256 << 20), DeviceState.READY,
                     "pmem0 mounted at /pmem-scratch with DAX", mount=MOUNT)


def test_a_ready_region_whose_mount_fell_back_is_degraded_with_the_reason() -> None:
    fell = judge(FELL_BACK, address=0x7f5034a00000)
    shown = apply_pmd_check(READY, [fell])
    assert (shown.state, shown.reason) == (DeviceState.NO_PMD, fell.reason)


@pytest.mark.parametrize("check", [
    PmdCheck("scratch", "/pmem-scratch", "259:1", PmdResult.FALLBACK, "another device"),
    PmdCheck("scratch", "/elsewhere", "259:0", PmdResult.FALLBACK, "another mountpoint"),
    PmdCheck("data", "/pmem-scratch", "259:0", PmdResult.FALLBACK, "another region"),
    PmdCheck("scratch", "/pmem-scratch", "259:0", PmdResult.UNCHECKED, "a warning"),
    PmdCheck("scratch", "/pmem-scratch", "259:0", PmdResult.PMD, "served"),
])
def test_a_record_of_another_mount_or_a_good_one_changes_nothing(check: PmdCheck) -> None:
    assert apply_pmd_check(READY, [check]) == READY
