"""Bounded work whatever the config: a region count limit far above any real machine, and
an overlap check that stays fast (sorted, O(n log n)) and says exactly what the plain
pairwise check says."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from pmemd.core.config import MAX_REGIONS, parse_config
from pmemd.core.ranges import MemRange

M = 1 << 20


def pinned(count: int, step: int = 2) -> str:
    """``count`` regions of 2 MiB, each at its own offset (a 1 MiB file for 24,500)."""
    lines = ["version: 1", "memory: {alignment: 2M}", "regions:"]
    lines += [f"- {{name: r{i}, size: 2M, offset: {(i + 1) * step}M}}" for i in range(count)]
    return "\n".join(lines) + "\n"


def test_the_limit_is_far_above_a_real_machine() -> None:
    # x86's command line holds 2,048 bytes: about 100 memmap= options at most.
    assert MAX_REGIONS >= 1024


def test_regions_up_to_the_limit_are_accepted() -> None:
    assert len(parse_config(pinned(MAX_REGIONS)).require().regions) == MAX_REGIONS


def test_more_regions_than_the_limit_is_one_clear_problem() -> None:
    parsed = parse_config(pinned(5_000), "pmemd.yaml")
    (problem,) = parsed.problems
    assert problem.render().startswith(
        f"pmemd.yaml:4:1: regions: 5000 regions; pmemd manages at most {MAX_REGIONS}")
    assert parsed.usable is None


def test_a_megabyte_of_regions_is_one_clear_problem_at_once() -> None:
    """24,500 pinned regions (1 MiB) took about 20 s, most of it comparing every pair."""
    from pmemd.core.yamltree import MAX_NODES

    text = pinned(24_500)
    assert len(text) < 1 << 20
    started = time.monotonic()
    parsed = parse_config(text, "pmemd.yaml")
    assert time.monotonic() - started < 5  # a safety bound: it takes about 0.3 s
    (problem,) = parsed.problems
    assert f"more than {MAX_NODES} YAML nodes" in problem.message
    assert parsed.usable is None


def test_one_more_than_the_limit() -> None:
    parsed = parse_config(pinned(MAX_REGIONS + 1), "pmemd.yaml")
    assert [p.key for p in parsed.problems] == ["regions"]


# --- the overlap check against the pairwise one it replaced ---------------------------------


def pairwise(regions: list[tuple[str, int, int | None]]) -> list[tuple[str, str]]:
    """The problems between regions as the former check found them, comparing each region
    with every earlier one it kept: (key, message), in file order."""
    found: list[tuple[str, str]] = []
    names: dict[str, int] = {}
    kept: list[tuple[str, MemRange]] = []
    for index, (name, size, offset) in enumerate(regions):
        before = len(found)
        if name in names:
            found.append((f"regions[{index}].name",
                          f"duplicate region name {name!r} (also regions[{names[name]}])"))
        rng = MemRange.sized(offset, size) if offset is not None else None
        for other, other_range in kept:
            if rng is not None and rng.overlaps(other_range):
                found.append((f"regions[{index}].offset",
                              f"{rng} overlaps region {other!r} ({other_range})"))
        if len(found) == before:
            names[name] = index
            if rng is not None:
                kept.append((name, rng))
    return found


def as_yaml(regions: list[tuple[str, int, int | None]]) -> str:
    lines = ["version: 1", "memory: {alignment: 2M}", "regions:"]
    for name, size, offset in regions:
        at = f", offset: {offset // M}M" if offset is not None else ""
        lines.append(f"- {{name: {name}, size: {size // M}M{at}}}")
    return "\n".join(lines) + "\n"


region = st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"]),
                   st.integers(1, 8).map(lambda n: n * 2 * M),
                   st.none() | st.integers(0, 24).map(lambda n: n * 2 * M))


@settings(max_examples=300, deadline=None)
@given(st.lists(region, max_size=24))
def test_overlaps_are_exactly_what_the_pairwise_check_found(
        regions: list[tuple[str, int, int | None]]) -> None:
    parsed = parse_config(as_yaml(regions), "pmemd.yaml")
    found = [(p.key, p.message) for p in parsed.problems]
    assert found == pairwise(regions)


def test_a_range_overlapping_many_kept_ones_names_each_in_file_order() -> None:
    regions: list[tuple[str, int, int | None]] = [
        ("c", 2 * M, 8 * M), ("a", 2 * M, 0), ("b", 2 * M, 4 * M), ("big", 16 * M, 0)]
    found = [(p.key, p.message) for p in parse_config(as_yaml(regions)).problems]
    assert found == pairwise(regions)
    assert [m.split("region ")[1][:3] for _, m in found] == ["'c'", "'a'", "'b'"]


spans = st.lists(st.tuples(st.integers(0, 400), st.integers(1, 40)), max_size=300)


@settings(max_examples=200, deadline=None)
@given(spans)
def test_kept_ranges_find_what_comparing_every_pair_finds(pairs: list[tuple[int, int]]) -> None:
    from pmemd.core.overlaps import KeptRanges

    ranges = [MemRange.sized(start, size) for start, size in pairs]
    index: KeptRanges[int] = KeptRanges(ranges)
    kept: list[int] = []
    for number, rng in enumerate(ranges):
        expected = sorted(k for k in kept if ranges[k].overlaps(rng))
        assert sorted(index.overlapping(rng)) == expected
        if not expected:
            index.keep(rng, number)
            kept.append(number)


def test_a_document_of_too_many_nodes_is_refused_where_it_crosses_the_limit() -> None:
    """100,000 repeated keys (1 MiB) took 2 s of YAML events and made 100,000 problems."""
    from pmemd.core.yamltree import MAX_NODES

    text = "version: 1\n" + "boot: {}\n" * 100_000
    (problem,) = parse_config(text, "pmemd.yaml").problems
    # line 1 makes three nodes (the document's mapping, "version", "1"), each line after it
    # two ("boot" and its mapping): the one past the limit is on this line
    line = 1 + (MAX_NODES + 1 - 3 + 1) // 2
    assert problem.render().startswith(f"pmemd.yaml:{line}:")
    assert f"more than {MAX_NODES} YAML nodes" in problem.message


def test_the_largest_real_config_is_far_below_the_node_limit() -> None:
    from pmemd.core.yamltree import MAX_NODES

    lines = ["version: 1", "regions:"]
    for i in range(MAX_REGIONS):
        lines += [f"  - name: r{i}", "    size: 128M", f"    offset: {4 + i}G",
                  "    filesystem:", "      type: ext4", f"      mountpoint: /pmem/r{i}",
                  "      options: [" + ", ".join(["noatime"] * 10) + "]",
                  "      on-boot: keep"]
    assert parse_config("\n".join(lines) + "\n").problems == ()
    assert MAX_NODES > 1.5 * MAX_REGIONS * 28  # 28 nodes for each such region
