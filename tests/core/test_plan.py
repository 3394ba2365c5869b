"""The planner on machine trees modelled on real machines."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from pmemd.core.cmdline import parse_cmdline
from pmemd.core.config import parse_config
from pmemd.core.facts import MachineFacts
from pmemd.core.model import Config
from pmemd.core.placement import Placement, place_regions
from pmemd.core.plan import ChangeAction, Plan, PlanState, plan
from pmemd.core.ranges import MemRange
from pmemd.machine.facts import read_facts
from pmemd.machine.root import Machine
from tests.conftest import MACHINES

G, M = 1 << 30, 1 << 20


def facts(tree: str, cmdline: str | None = None) -> MachineFacts:
    read = read_facts(Machine(MACHINES / tree))
    if cmdline is not None:
        read = dataclasses.replace(read, cmdline=parse_cmdline(cmdline))
    return read


def config(text: str) -> Config:
    return parse_config(textwrap.dedent(text), "pmemd.yaml").require()


def regions(*specs: str, extra: str = "") -> Config:
    """A config from short region specs: 'name size [offset]'."""
    lines = ["version: 1", extra, "regions:"]
    for spec in specs:
        name, size, *offset = spec.split()
        lines.append(f"  - name: {name}\n    size: {size}")
        if offset:
            lines.append(f"    offset: {offset[0]}")
    return parse_config("\n".join(lines) + "\n", "pmemd.yaml").require()


def codes(result: Plan) -> list[str]:
    return [w.code for w in result.warnings]


def changes(result: Plan) -> list[tuple[str, str]]:
    return [(c.action.value, c.argument) for c in result.changes]


def problem_text(result: Plan) -> str:
    return "\n".join(p.render() for p in result.problems)


# --- the reference procedure's machine ----------------------------------------------------


def test_reference_procedure_fresh_machine() -> None:
    result = plan(regions("data 4G 12G"), facts("server-16g"))
    assert result.state is PlanState.CHANGES_PENDING
    assert result.reboot_required
    assert changes(result) == [("add", "memmap=4G!12G")]
    (region,) = result.regions
    assert region.range == MemRange.sized(12 * G, 4 * G)
    assert region.placement is Placement.CONFIG
    assert not region.on_running_cmdline
    assert codes(result) == ["kaslr"]  # 16 GiB and KASLR on: the procedure's advice
    assert result.memory_left == result.memory_total - 4 * G


def test_reference_procedure_already_booted_is_converged() -> None:
    result = plan(regions("data 4G 12G"), facts("server-16g-memmap"))
    assert result.state is PlanState.CONVERGED
    assert not result.reboot_required
    assert changes(result) == [("keep", "memmap=4G!12G")]
    assert result.regions[0].on_running_cmdline
    assert result.foreign == ()


def test_the_same_range_written_differently_counts_as_present() -> None:
    result = plan(regions("data 4G 12G"),
                  facts("server-16g", "ro memmap=0x100000000!0x300000000"))
    assert result.state is PlanState.CONVERGED


def test_auto_placement_takes_the_highest_free_aligned_ram() -> None:
    result = plan(regions("data 4G 12G", "cache 2G", "log 256M"), facts("server-16g"))
    placed = {r.region.name: (r.range, r.placement) for r in result.regions}
    assert placed["data"] == (MemRange.sized(12 * G, 4 * G), Placement.CONFIG)
    assert placed["cache"] == (MemRange.sized(10 * G, 2 * G), Placement.AUTO)
    assert placed["log"] == (MemRange.sized(10 * G - 256 * M, 256 * M), Placement.AUTO)
    assert result.desired_args == ("memmap=256M!9984M", "memmap=2G!10G", "memmap=4G!12G")
    reasons = {c.argument: c.reason for c in result.changes}
    assert "pin it with 'offset: 10G'" in reasons["memmap=2G!10G"]


def test_auto_placement_does_not_depend_on_the_command_line() -> None:
    cfg = regions("cache 2G")
    first = place_regions(cfg, facts("server-16g").memory)
    second = place_regions(cfg, facts("server-16g-memmap").memory)
    assert first == second


def test_explicit_regions_elsewhere_do_not_move_auto_ones() -> None:
    before = plan(regions("cache 2G"), facts("server-16g")).regions[0].range
    after = plan(regions("cache 2G", "low 1G 4G"), facts("server-16g"))
    assert {r.region.name: r.range for r in after.regions}["cache"] == before


def test_qemu_guest_auto_placement_stays_below_the_reserved_top() -> None:
    result = plan(regions("data 512M"), facts("qemu-2g"))
    (region,) = result.regions
    assert region.range == MemRange(0x58000000, 0x78000000)
    assert result.state is PlanState.CHANGES_PENDING


# --- what does not fit --------------------------------------------------------------------


def test_region_across_a_reserved_hole() -> None:
    result = plan(regions("data 2G 2G"), facts("server-16g"))
    assert result.state is PlanState.INVALID_CONFIG
    text = problem_text(result)
    assert "pmemd.yaml:6:13: regions[0].offset: region 'data' (0x80000000-0xffffffff (2 GiB)) " \
           "is not inside usable RAM: it overlaps Reserved 0xbffe0000-0xbfffffff" in text
    assert "no memory at all at 0xc0000000-0xfeffbfff" in text


def test_region_beyond_the_end_of_ram() -> None:
    result = plan(regions("data 4G 16G"), facts("server-16g"))
    assert "no memory at all at 0x400000000-0x4ffffffff (the memory map ends at 0x3ffffffff)" \
        in problem_text(result)


def test_two_node_server_hole_between_nodes() -> None:
    result = plan(regions("data 4G 32G"), facts("server-64g-2node"))
    assert "it overlaps Reserved 0x880000000-0x8807fffff" in problem_text(result)


def test_too_large_for_any_usable_range() -> None:
    result = plan(regions("huge 40G"), facts("server-64g-2node"))
    text = problem_text(result)
    assert "regions[0].size: no free usable RAM can hold region 'huge' (40 GiB aligned to " \
           "128M); the largest aligned free range is 0x888000000-0x107fffffff (31.9 GiB)" in text


def test_not_enough_memory_left_for_the_system() -> None:
    fits = plan(regions("a 8G 4G", "b 2816M 128M"), facts("server-16g"))
    assert fits.state is PlanState.CHANGES_PENDING
    small = plan(regions("a 12G 4G", "b 2816M 128M"), facts("server-16g"))
    assert small.state is PlanState.INVALID_CONFIG
    assert "regions: the regions take 14.8 GiB of 15 GiB usable RAM, leaving 255.5 MiB to the " \
           "system; memory.min-system-ram asks for at least 1 GiB" in problem_text(small)


def test_min_system_ram_is_configurable() -> None:
    cfg = regions("a 12G 4G", "b 2816M 128M", extra="memory:\n  min-system-ram: 128M")
    assert plan(cfg, facts("server-16g")).state is PlanState.CHANGES_PENDING


# --- warnings -----------------------------------------------------------------------------


def test_no_kaslr_warning_on_a_large_machine() -> None:
    assert codes(plan(regions("a 4G"), facts("server-64g-2node"))) == []


def test_more_than_four_ranges_defeat_kaslr_avoidance_on_any_machine() -> None:
    cfg = regions("a 1G", "b 1G", "c 1G", "d 1G", "e 1G")
    assert "kaslr-too-many-ranges" in codes(plan(cfg, facts("server-64g-2node")))


def test_kaslr_disable_adds_nokaslr_and_silences_the_warning() -> None:
    cfg = regions("data 4G 12G", extra="boot:\n  kaslr: disable")
    result = plan(cfg, facts("server-16g"))
    assert ("add", "nokaslr") in changes(result)
    assert result.desired_args[-1] == "nokaslr"
    assert "kaslr" not in codes(result)


def test_nokaslr_already_on_the_command_line() -> None:
    result = plan(regions("data 4G 12G"), facts("server-16g", "ro nokaslr"))
    assert "kaslr" not in codes(result)


def test_kernel_image_inside_a_region() -> None:
    result = plan(regions("data 2G 23G"), facts("server-64g-2node"))
    (warning,) = [w for w in result.warnings if w.code == "kernel-image-in-region"]
    assert warning.region == "data"
    assert "kernel image (0x5e1000000-0x5e3bfffff) lies inside region 'data'" in warning.message


def test_missing_kernel_support_names_the_option() -> None:
    base = facts("server-16g")
    assert base.kernel.next_config is not None
    crippled = dict(base.kernel.next_config, CONFIG_X86_PMEM_LEGACY="n", CONFIG_FS_DAX="n")
    weak = dataclasses.replace(base, kernel=dataclasses.replace(base.kernel,
                                                                 next_config=crippled))
    cfg = config("""\
        version: 1
        regions:
          - {name: a, size: 1G, filesystem: {type: ext4, mountpoint: /pmem}}
    """)
    messages = [w.message for w in plan(cfg, weak).warnings if w.code == "kernel-support"]
    assert len(messages) == 2
    assert "kernel 6.1.0-27-amd64 lacks CONFIG_X86_PMEM_LEGACY (needs y or m)" in messages[0]
    assert "lacks CONFIG_FS_DAX (needs y)" in messages[1]
    bare = plan(regions("a 1G"), weak).warnings  # no filesystem: FS_DAX is not needed
    assert [w.message for w in bare if "FS_DAX" in w.message] == []


def test_unknown_kernel_config_is_said() -> None:
    base = facts("server-16g")
    blind = dataclasses.replace(base, kernel=dataclasses.replace(base.kernel, next_config=None))
    assert "kernel-config-unknown" in codes(plan(regions("a 1G"), blind))


# --- memmap options pmemd did not write ---------------------------------------------------


def test_foreign_memmap_is_reported_and_left_alone() -> None:
    result = plan(regions("data 4G 12G"), facts("server-16g-memmap", "ro memmap=1G!4G"))
    assert [f.argument for f in result.foreign] == ["memmap=1G!4G"]
    assert ("remove", "memmap=1G!4G") not in changes(result)
    assert "foreign-memmap" in codes(result)


def test_owned_memmap_no_longer_configured_is_removed() -> None:
    result = plan(regions("data 2G 12G"), facts("server-16g-memmap"),
                  owned=["memmap=4G!12G"])
    assert changes(result) == [("add", "memmap=2G!12G"), ("remove", "memmap=4G!12G")]
    assert result.foreign == ()
    assert result.state is PlanState.CHANGES_PENDING


def test_empty_config_on_a_machine_with_foreign_pmem_changes_nothing() -> None:
    result = plan(config("version: 1\n"), facts("server-16g-memmap"))
    assert result.state is PlanState.CONVERGED
    assert [f.argument for f in result.foreign] == ["memmap=4G!12G"]


def test_the_backslash_trap_is_explained() -> None:
    result = plan(regions("data 4G 12G"), facts("server-16g", "ro memmap=512M\\!1G"))
    (warning,) = [w for w in result.warnings if w.code == "memmap-misparsed"]
    assert "limits usable RAM to the first 512M" in warning.message
    assert "stray backslash" in warning.message
    # ... and with RAM cut at 512M the region cannot exist: that blocks the plan.
    assert "so region 'data' at 0x300000000-0x3ffffffff cannot exist" in problem_text(result)
    assert result.state is PlanState.INVALID_CONFIG


def test_partial_overlap_with_a_foreign_range_is_a_conflict() -> None:
    result = plan(regions("data 4G 12G"), facts("server-16g", "ro memmap=2G!13G"))
    assert "memmap=2G!13G on the command line (not written by pmemd) overlaps region 'data'" \
        in problem_text(result)


def test_reboot_required_when_the_bootloader_is_ready() -> None:
    ready = parse_cmdline("ro quiet memmap=4G!12G")
    result = plan(regions("data 4G 12G"), facts("server-16g"), next_boot=ready)
    assert result.state is PlanState.REBOOT_REQUIRED
    assert changes(result) == [("keep", "memmap=4G!12G")]


def test_removal_pending_reboot() -> None:
    result = plan(config("version: 1\n"), facts("server-16g-memmap"), owned=["memmap=4G!12G"],
                  next_boot=parse_cmdline("ro quiet"))
    assert result.state is PlanState.REBOOT_REQUIRED
    assert result.changes == ()


@pytest.mark.parametrize("tree", ["server-16g", "server-16g-memmap", "qemu-2g",
                                  "server-64g-2node"])
def test_every_example_machine_reads(tree: str) -> None:
    read = facts(tree)
    assert read.memory.usable_total > 0
    assert read.memory.edited is not None
    assert read.kernel.next_config is not None
    assert all(c.action is ChangeAction.KEEP for c in plan(config("version: 1\n"), read).changes)
