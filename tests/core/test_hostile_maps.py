"""Hostile input to everything that reads the machine's facts: a pasted boot log (the
parser, and ``pmemd memmap --dmesg`` itself on arbitrary bytes), sysfs values, and the
kernel command line. Each input ends in a result or a typed error, never a traceback,
within a stated bound; nothing unprintable reaches the terminal."""

from __future__ import annotations

import contextlib
import io
import json as jsonlib
import os
import tempfile
import time
from collections.abc import Callable
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmemd.cli.pmemd import main
from pmemd.core.cmdline import parse_cmdline
from pmemd.core.dmesg import parse_dmesg_e820
from pmemd.core.e820 import E820ParseError, SysfsMemmapEntry, parse_sysfs_memmap
from pmemd.core.e820_table import normalise
from pmemd.core.memmap import memmap_args, reserved_ranges
from pmemd.core.u64 import U64_MAX, U64Error, parse_dec_u64, parse_hex_u64
from tests.reliability import Figure

WHO = ["BIOS-e820", "Xen", "user", "modified", "reserve setup_data", "e820", "BIOS-88"]
TYPES = ["usable", "reserved", "ACPI data", "persistent (type 12)", "type 99", "\x1b[2J",
         "soft reserved", ""]
HEX = st.text("0123456789abcdefABCDEF", min_size=0, max_size=42)


@st.composite
def table_lines(draw: st.DrawFn) -> str:
    """Lines that look like the kernel's tables, with every field bent."""
    who = draw(st.sampled_from(WHO) | st.text(max_size=12))
    first, last = draw(HEX), draw(HEX)
    kind = draw(st.sampled_from(TYPES) | st.text(max_size=20))
    if draw(st.booleans()):
        return f"[    0.000000] {who}: [mem 0x{first}-0x{last}] {kind}"
    return f" {who}: {first} - {last} ({kind})"


MARKERS = ["BIOS-provided physical RAM map:", "-- Boot 0123abcd --", "Linux version 6.1.0",
           "user-defined physical RAM map:", "e820: [mem 0xc0000000-0xfebfffff] available"]
LOGS = st.lists(table_lines() | st.sampled_from(MARKERS) | st.text(max_size=60),
                max_size=40).map("\n".join)
PER_INPUT = 2.0  # seconds: the safety bound for one input (they take milliseconds)
PRINTABLE_CONTROLS = {"\n", "\t"}


def _visible(text: str) -> bool:
    return all(c.isprintable() or c in PRINTABLE_CONTROLS for c in text)


class Tally:
    """How many inputs a test really tried, and the slowest one."""

    def __init__(self) -> None:
        self.tried = 0
        self.slowest = 0.0

    def time(self, run: Callable[[], object]) -> None:
        began = time.thread_time()  # CPU time: what else the machine runs does not count
        run()
        spent = time.thread_time() - began
        self.tried += 1
        self.slowest = max(self.slowest, spent)
        assert spent < PER_INPUT


def _parse(text: str) -> None:
    try:
        parsed = parse_dmesg_e820(text)
    except E820ParseError as err:
        assert _visible(str(err)) and err.line >= 0
        return
    entries = [*parsed.firmware, *(parsed.edited or ())]
    assert all(0 <= e.range.start < e.range.end <= U64_MAX + 1 for e in entries)
    assert all(_visible(e.label) for e in entries)
    firmware = parsed.firmware
    assert all(a.range.end <= b.range.start for a, b in pairwise(firmware))


def test_the_boot_log_parser_on_hostile_text(reliability: Callable[[Figure], None]) -> None:
    tally = Tally()

    @settings(max_examples=600, deadline=None)
    @given(LOGS | st.text(max_size=400))
    def run(text: str) -> None:
        tally.time(lambda: _parse(text))

    run()
    # and one input as large as --dmesg reads: 16 MiB of table lines out of order
    line = "BIOS-e820: [mem 0x{:016x}-0x{:016x}] usable\n"
    big = "".join(line.format(a << 21, (a << 21) + (1 << 20)) for a in range(250_000, 0, -1))
    assert len(big) < 16 << 20
    began = time.monotonic()
    assert len(parse_dmesg_e820(big).firmware) == 250_000
    assert time.monotonic() - began < 60  # generous: about 5 s here
    tally.tried += 1
    reliability(Figure("hostile input", "firmware map / dmesg parser (hypothesis)",
                       tally.tried, "inputs",
                       note=f"typed error or map; slowest {tally.slowest * 1000:.0f} ms, "
                            "a 15 MiB log of 250,000 unsorted lines included"))


def _memmap(data: bytes, json: bool) -> None:
    with tempfile.NamedTemporaryFile("wb", suffix=".log", delete=False) as handle:
        handle.write(data)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["memmap", "--dmesg", handle.name, "--alignment", "2M",
                           *(["--json"] if json else [])])
    finally:
        os.unlink(handle.name)
    assert status in (0, 1), err.getvalue()
    assert "Traceback" not in err.getvalue()
    assert _visible(out.getvalue()) and _visible(err.getvalue())
    if status == 1:  # an error; with --json also as a document on stdout
        assert err.getvalue().startswith("pmemd: ")
        if json:
            assert jsonlib.loads(out.getvalue())["error"]["status"] == 1
        else:
            assert out.getvalue() == ""


def test_pmemd_memmap_on_arbitrary_bytes(reliability: Callable[[Figure], None]) -> None:
    tally = Tally()

    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(LOGS.map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(max_size=300),
           st.booleans())
    def run(data: bytes, json: bool) -> None:
        tally.time(lambda: _memmap(data, json))

    run()
    reliability(Figure("hostile input", "pmemd memmap --dmesg on arbitrary bytes "
                       "(hypothesis, in-process)", tally.tried, "inputs",
                       note=f"exit 0 or 1, no traceback, no control character printed; "
                            f"slowest {tally.slowest * 1000:.0f} ms"))


def _sysfs(start: str, end: str, kind: str) -> None:
    try:
        entries = parse_sysfs_memmap([SysfsMemmapEntry("0", start, end, kind)])
    except E820ParseError as err:
        assert str(err).startswith("0") and _visible(str(err))
        return
    table = normalise(entries)
    assert all(e.range.end <= U64_MAX + 1 and _visible(e.label) for e in table.entries)


def _number(text: str) -> None:
    readers: list[Callable[[str], int]] = [
        lambda t: parse_hex_u64(t, prefix=True), lambda t: parse_hex_u64(t, prefix=False),
        parse_dec_u64]
    for read in readers:
        try:
            assert 0 <= read(text) <= U64_MAX
        except U64Error as err:
            assert _visible(str(err))


def _sysfs_and_numbers(start: str, end: str, kind: str) -> None:
    _sysfs(start, end, kind)
    _number(start)
    _number(end)


NUMBERS = (st.builds(lambda v: f"0x{v:x}", st.integers(-(1 << 70), 1 << 70))
           | st.builds(str, st.integers(-(1 << 70), 1 << 70)) | HEX | st.text(max_size=30))


def test_sysfs_values_the_kernel_never_writes(reliability: Callable[[Figure], None]) -> None:
    tally = Tally()

    @settings(max_examples=500, deadline=None)
    @given(NUMBERS, NUMBERS, st.text(max_size=30))
    def run(start: str, end: str, kind: str) -> None:
        tally.time(lambda: _sysfs_and_numbers(start, end, kind))

    run()
    reliability(Figure("hostile input", "sysfs numbers and types (hypothesis)", tally.tried,
                       "inputs", note="a u64 or an error naming the file"))


CMDLINE_WORDS = st.sampled_from(["memmap=", "4G", "!", "12G", "0x", "K", ",", "%", "-", "+",
                                 "\uff14", '"', " ", "--", "\t", "exactmap", "$", "#", "@"])


def _cmdline(text: str) -> None:
    cmdline = parse_cmdline(text)
    for arg in memmap_args(cmdline):
        for item in arg.items:
            consumed = item.text[: len(item.text) - len(item.junk)]
            assert consumed.isascii()  # the kernel reads no other digit, suffix or sign
            assert 0 <= item.size <= U64_MAX
    for rng in reserved_ranges(cmdline):
        assert rng.start <= U64_MAX


def test_the_command_line_parser_on_hostile_text(reliability: Callable[[Figure], None]
                                                 ) -> None:
    tally = Tally()

    @settings(max_examples=500, deadline=None)
    @given(st.lists(CMDLINE_WORDS, max_size=30).map("".join) | st.text(max_size=200))
    def run(text: str) -> None:
        tally.time(lambda: _cmdline(text))

    run()
    reliability(Figure("hostile input", "kernel command line / memmap= parser (hypothesis)",
                       tally.tried, "inputs", note="read as the kernel reads it or ignored"))
