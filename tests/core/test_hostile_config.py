"""Hostile input against the config parser and the validator (the parse, then the plan on a
machine, which is what ``pmemd validate`` and D-Bus ``Validate`` run): arbitrary bytes and
text, configs with something odd spliced in, deep nesting, alias bombs, 10,000-region
documents and huge strings. Every input ends in a valid config or located problems (a
typed error where one is raised), within a time and memory bound, and writes nothing: an
audit hook fails the test at any open for writing, any rename, removal or new directory."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmemd.core.config import MAX_REGIONS, parse_config
from pmemd.core.facts import MachineFacts
from pmemd.core.plan import plan
from pmemd.core.yamltree import MAX_CONFIG_BYTES, MAX_DEPTH
from pmemd.errors import ConfigError, PmemdError
from pmemd.machine.facts import read_facts
from pmemd.machine.root import Machine
from tests.conftest import MACHINES
from tests.reliability import Figure

# per input, in CPU time of the validating thread (a safety bound: the slowest, 1,024
# regions with filesystems, takes about 0.4 s here; wall time would also count whatever
# else the machine runs meanwhile — a qemu guest of the suite made it 2.7 s once)
SECONDS = 2.0
MEMORY = 64 << 20  # bytes allocated at the peak, per input (tracemalloc; at most 24 MiB seen)
RENDERED = 64 << 10  # what the problems of one input may take as text
PATH = "hostile.yaml"

# --- nothing written ---------------------------------------------------------------------

_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_CHANGES = frozenset({"os.rename", "os.remove", "os.rmdir", "os.mkdir", "os.link",
                      "os.symlink", "os.truncate", "shutil.rmtree", "os.chmod", "os.chown"})
_watch: list[list[str]] = []  # while a list is here, what was written is appended to it


def _audit(event: str, args: tuple[object, ...]) -> None:
    if not _watch:
        return
    if event == "open" and len(args) >= 3:
        mode, flags = args[1], args[2]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITING):
            _watch[-1].append(f"open {args[0]!r} {mode!r} {flags!r}")
    elif event in _CHANGES:
        _watch[-1].append(f"{event} {args!r}")


sys.addaudithook(_audit)  # audit hooks stay for the process: this one only looks when asked


@contextlib.contextmanager
def nothing_written() -> Iterator[None]:
    written: list[str] = []
    _watch.append(written)
    try:
        yield
    finally:
        _watch.pop()
    assert written == [], written


# --- one input ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def facts() -> MachineFacts:
    return read_facts(Machine(MACHINES / "server-16g"))


def validate(data: bytes | str, facts: MachineFacts) -> None:
    """Parse and plan ``data`` as ``pmemd validate`` does, and hold every promise."""
    tracemalloc.start()
    started = time.thread_time()
    try:
        with nothing_written():
            parsed = parse_config(data, PATH)  # never raises
            if parsed.valid:
                with contextlib.suppress(PmemdError):  # a typed error is an answer too
                    plan(parsed.require(), facts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    spent = time.thread_time() - started
    assert (parsed.config is not None) is (not parsed.problems)
    for problem in parsed.problems:
        assert problem.location is not None and problem.location.path == PATH
        assert problem.location.line >= 1 and problem.location.column >= 1
    if parsed.problems:
        assert len(ConfigError(parsed.problems).render()) < RENDERED
    assert spent < SECONDS, spent
    assert peak < MEMORY, peak


# --- what hostile input looks like -------------------------------------------------------

GOOD = ("version: 1\nboot:\n  reboot: never\nmemory:\n  alignment: 128M\nregions:\n"
        "  - name: data\n    size: 4G\n    offset: 12G\n    filesystem:\n      type: xfs\n"
        "      mountpoint: /pmem\n      options: [noatime]\n")


def alias_bomb(depth: int, width: int) -> str:
    """Billion laughs: each level an anchor whose list repeats the level below."""
    lines = ["version: 1", "a0: &a0 [lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]"
              for i in range(1, depth)]
    return "\n".join(lines) + "\n"


def nested(depth: int, flow: bool) -> str:
    if flow:
        return "version: 1\nregions: " + "[" * depth + "]" * depth + "\n"
    return "version: 1\nboot:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(depth))


def many_regions(count: int, flow: bool, fs: bool) -> str:
    def region(i: int) -> str:
        extra = f", filesystem: {{type: ext4, mountpoint: /p/{i}}}" if fs else ""
        return f"{{name: r{i}, size: 128M, offset: {4096 + 128 * i}M{extra}}}"

    if flow:
        return "version: 1\nregions: [" + ", ".join(region(i) for i in range(count)) + "]\n"
    return "version: 1\nregions:\n" + "".join(f"- {region(i)}\n" for i in range(count))


HUGE_PLACES = {
    "name": "version: 1\nregions:\n- {{name: {v}, size: 1G}}\n",
    "size": "version: 1\nregions:\n- {{name: a, size: {v}}}\n",
    "offset": "version: 1\nregions:\n- {{name: a, size: 1G, offset: {v}}}\n",
    "mountpoint": "version: 1\nregions:\n- {{name: a, size: 1G, filesystem: "
                  "{{type: ext4, mountpoint: /{v}}}}}\n",
    "key": "version: 1\n{v}: 1\n",
    "version": "version: {v}\n",
    "comment": "version: 1\n# {v}\n",
    "option": "version: 1\nregions:\n- {{name: a, size: 1G, filesystem: "
              "{{type: ext4, mountpoint: /p, options: [{v}]}}}}\n",
}


def huge(place: str, length: int, char: str) -> str:
    """A value of ``length`` characters (up to the size limit) at ``place``."""
    return HUGE_PLACES[place].format(v=char * length)


def spliced(good: str, at: int, junk: str) -> str:
    at %= len(good) + 1
    return good[:at] + junk + good[at:]


small_text = st.text(max_size=40)
hostile = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=2000),
    st.builds(spliced, st.just(GOOD), st.integers(0, len(GOOD)), small_text),
    st.builds(spliced, st.just(GOOD), st.integers(0, len(GOOD)),
              st.sampled_from(["\x00", "\x1b[2J", "\ufeff", "\r", "\u2028", "¹", "４", "&a ",
                               "*a", "!!python/object:os.system ", "<<: ", "? ", "---\n",
                               "...\n", "%YAML 1.1\n", "\t", "'", '"', "{", "[", "\\"])),
    st.builds(alias_bomb, st.integers(2, 12), st.integers(1, 12)),
    st.builds(nested, st.integers(1, 20_000), st.just(True)),
    st.builds(nested, st.integers(1, 1_000), st.just(False)),  # ~d² bytes: at most 1 MB
    st.builds(many_regions, st.sampled_from([0, 1, 2, MAX_REGIONS, MAX_REGIONS + 1,
                                             10_000]), st.booleans(), st.booleans()),
    st.builds(huge, st.sampled_from(sorted(HUGE_PLACES)),
              st.sampled_from([1, 100, 10_000, MAX_CONFIG_BYTES - 200, MAX_CONFIG_BYTES + 1]),
              st.sampled_from(["a", "1", "x", " ", "é", "４", "\x00"])),
)


def test_hostile_input_gives_a_config_or_located_problems(
        facts: MachineFacts, reliability: Callable[[Figure], None]) -> None:
    tried = 0

    @settings(max_examples=400, deadline=None, database=None)
    @given(hostile)
    def check(data: bytes | str) -> None:
        nonlocal tried
        tried += 1
        validate(data, facts)

    check()
    reliability(Figure("hostile input", "config parser and validator (hypothesis)", tried,
                       "inputs", note=f"each < {SECONDS:g} s of CPU, < {MEMORY >> 20} MiB, "
                                      "nothing written"))


# Crafted inputs, each at its worst: a config that is all of one hostile thing.
CRAFTED: dict[str, Callable[[], str | bytes]] = {
    "billion laughs (9 levels of 9)": lambda: alias_bomb(10, 9),
    "alias bomb, wide": lambda: alias_bomb(3, 10_000),
    "flow nesting 100,000 deep": lambda: nested(100_000, True),
    "block nesting 2,000 deep": lambda: nested(2_000, False),
    "10,000 regions, block": lambda: many_regions(10_000, False, True),
    "10,000 regions on one line": lambda: many_regions(10_000, True, True),
    "1,024 regions with filesystems": lambda: many_regions(MAX_REGIONS, False, True),
    **{f"a 1 MiB {place}": functools.partial(huge, place, MAX_CONFIG_BYTES - 200, "a")
       for place in sorted(HUGE_PLACES)},
    "a 1 MiB number": lambda: huge("size", MAX_CONFIG_BYTES - 200, "9"),
    "1 MiB of NUL": lambda: b"\x00" * MAX_CONFIG_BYTES,
    "1 MiB of newlines": lambda: "\n" * MAX_CONFIG_BYTES,
    "1 MiB of one key repeated": lambda: "version: 1\n" + "boot: {}\n" * 100_000,
    "50 MiB": lambda: b"version: 1\n" + b"#" * (50 << 20),
    "50 M characters (a D-Bus string)": lambda: "version: 1\n" + "#" * (50 << 20),
    "1 MiB of flow punctuation": lambda: "version: 1\nregions: [" + ",x" * 400_000 + "]\n",
    f"deeper than {MAX_DEPTH} by one": lambda: nested(MAX_DEPTH + 1, True),
}


def test_crafted_hostile_inputs(facts: MachineFacts,
                                reliability: Callable[[Figure], None]) -> None:
    for name, make in CRAFTED.items():
        data = make()
        try:
            validate(data, facts)
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from None
    reliability(Figure("hostile input", "config parser and validator (crafted: alias bombs, "
                       "nesting, 10,000 regions, 1 MiB values)", len(CRAFTED), "inputs",
                       note=f"each < {SECONDS:g} s of CPU, < {MEMORY >> 20} MiB, nothing written"))
