"""Namespace modes in pmemd.yaml (``mode``, ``map``, ``align``): what they parse to, each
constraint ndctl and the kernel impose as one located problem, and the machine checks the
plan adds (system-ram on whole memory blocks, the kernel options each mode needs)."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from pmemd.core.config import parse_config
from pmemd.core.facts import MachineFacts
from pmemd.core.model import Config, NamespaceMode, PageMap, Region
from pmemd.core.modes import HotplugShare, mode_requirements
from pmemd.core.plan import PlanState, plan
from pmemd.core.ranges import MemRange
from pmemd.machine.facts import read_facts
from pmemd.machine.root import Machine
from tests.conftest import MACHINES
from tests.core.test_config import one_problem

G, M, K = 1 << 30, 1 << 20, 1 << 10


def region(body: str) -> Region:
    text = "version: 1\nregions:\n  - name: r\n" + textwrap.indent(textwrap.dedent(body), "    ")
    return parse_config(text, "pmemd.yaml").require().regions[0]


GOOD = [
    ("size: 1G", NamespaceMode.RAW, PageMap.MEM, 2 * M),
    ("size: 1G\nmode: raw", NamespaceMode.RAW, PageMap.MEM, 2 * M),
    ("size: 1G\nmode: fsdax", NamespaceMode.FSDAX, PageMap.MEM, 2 * M),
    ("size: 1G\nmode: fsdax\nmap: dev", NamespaceMode.FSDAX, PageMap.DEV, 2 * M),
    ("size: 1G\nmode: devdax", NamespaceMode.DEVDAX, PageMap.MEM, 2 * M),
    ("size: 1G\nmode: devdax\nalign: 4K", NamespaceMode.DEVDAX, PageMap.MEM, 4 * K),
    ("size: 2G\noffset: 4G\nmode: devdax\nalign: 1G\nmap: dev", NamespaceMode.DEVDAX,
     PageMap.DEV, G),
    ("size: 1G\nmode: system-ram", NamespaceMode.SYSTEM_RAM, PageMap.MEM, 2 * M),
    ("size: 1G\nmode: system-ram\nalign: 2M", NamespaceMode.SYSTEM_RAM, PageMap.MEM, 2 * M),
]


@pytest.mark.parametrize(("body", "mode", "page_map", "align"), GOOD)
def test_modes_parse(body: str, mode: NamespaceMode, page_map: PageMap, align: int) -> None:
    parsed = region(body)
    assert (parsed.mode, parsed.map, parsed.align) == (mode, page_map, align)
    assert parsed.block is (mode in (NamespaceMode.RAW, NamespaceMode.FSDAX))


def test_fsdax_keeps_a_filesystem_and_on_boot_keep() -> None:
    parsed = region("size: 1G\nmode: fsdax\nfilesystem: {type: ext4, mountpoint: /p, "
                    "on-boot: keep}")
    assert parsed.filesystem is not None and parsed.filesystem.on_boot.value == "keep"


REGION = "version: 1\nmemory: {alignment: 2M}\nregions:\n  - name: r\n"
BAD = {
    "unknown mode": ("size: 1G\nmode: memory",
                     "6:11: regions[0].mode: 'memory' is not one of: raw, fsdax, devdax, "
                     "system-ram"),
    "map on raw": ("size: 1G\nmap: dev", "6:10: regions[0].map: 'map' chooses where an fsdax"),
    "bad map": ("size: 1G\nmode: fsdax\nmap: disk",
                "7:10: regions[0].map: 'disk' is not one of: mem, dev"),
    "align on fsdax": ("size: 1G\nmode: fsdax\nalign: 2M",
                       "7:12: regions[0].align: 'align' is the fault size of a device-DAX "
                       "namespace (mode devdax or system-ram); this region's mode is fsdax"),
    "align not a page size": ("size: 1G\nmode: devdax\nalign: 64K",
                              "7:12: regions[0].align: 64K is not a page size a device-DAX "
                              "mapping can fault in; use one of 4K, 2M, 1G"),
    "align not a size": ("size: 1G\nmode: devdax\nalign: big", "7:12: regions[0].align:"),
    "fsdax not 16M": ("size: 24M\nmode: fsdax",
                      "5:11: regions[0].size: 24M is not a multiple of 16M: ndctl makes fsdax "
                      "namespaces in 16M units"),
    "devdax offset not 16M": ("size: 32M\noffset: 0x100200000\nmode: devdax",
                              "6:13: regions[0].offset: 4098M is not a multiple of 16M"),
    "1G align small": ("size: 1G\nmode: devdax\nalign: 1G",
                       "5:11: regions[0].size: with align 1G the device's data begins 1G into "
                       "the region"),
    "1G align offset": ("size: 2G\noffset: 0x150000000\nmode: devdax\nalign: 1G",
                        "6:13: regions[0].offset: with align 1G the region must start on a "
                        "1 GiB boundary"),
    "devdax with filesystem": ("size: 1G\nmode: devdax\nfilesystem: {type: ext4, "
                               "mountpoint: /p}",
                               "7:17: regions[0].filesystem: a region in mode devdax is a "
                               "character device (/dev/daxX.Y) and holds no filesystem"),
    "system-ram with filesystem": ("size: 1G\nmode: system-ram\nfilesystem: {type: xfs, "
                                   "mountpoint: /p}",
                                   "regions[0].filesystem: a region in mode system-ram is "
                                   "memory handed to the kernel's page allocator"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_mode_settings_give_one_located_message(case: str) -> None:
    body, expected = BAD[case]
    message = one_problem(REGION + textwrap.indent(body, "    ") + "\n")
    assert expected in message, message


def test_bad_mode_leaves_the_other_regions_usable() -> None:
    parsed = parse_config("version: 1\nregions:\n  - {name: a, size: 1G, mode: devdax, "
                          "filesystem: {type: ext4, mountpoint: /a}}\n  - {name: b, size: 1G, "
                          "offset: 4G, mode: fsdax}\n", "pmemd.yaml")
    assert not parsed.valid and parsed.dropped == (0,)
    assert parsed.usable is not None
    assert [(r.name, r.mode) for r in parsed.usable.regions] == [("b", NamespaceMode.FSDAX)]


def facts(tree: str) -> MachineFacts:
    return read_facts(Machine(MACHINES / tree))


def config(text: str) -> Config:
    return parse_config(textwrap.dedent(text), "pmemd.yaml").require()


def test_memory_block_size_is_read() -> None:
    assert facts("server-16g").memory_block == 128 * M
    assert facts("server-64g-2node").memory_block == 2 * G
    assert facts("server-16g-memmap").memory_block is None  # no file: nothing checked


SYSTEM_RAM = [
    # (machine, size, offset, problem or None)
    ("server-16g", "1G", "4G", None),
    ("server-16g", "128M", "4G", "is 128 MiB: the kernel adds memory in 128M blocks"),
    ("server-64g-2node", "4G", "8G", None),
    ("server-64g-2node", "1G", "8G", "must start and end on memory blocks: the kernel adds "
                                     "memory in 2G blocks"),
    ("server-64g-2node", "2G", "9G", "must start and end on memory blocks"),
    ("server-16g-memmap", "128M", "4G", None),  # block size unknown: not checked
]


@pytest.mark.parametrize(("machine", "size", "offset", "expected"), SYSTEM_RAM)
def test_system_ram_on_whole_memory_blocks(machine: str, size: str, offset: str,
                                           expected: str | None) -> None:
    cfg = config(f"""\
        version: 1
        regions:
          - {{name: hot, size: {size}, offset: {offset}, mode: system-ram}}
    """)
    result = plan(cfg, facts(machine))
    messages = [p.render() for p in result.problems]
    if expected is None:
        assert messages == []
    else:
        assert len(messages) == 1 and expected in messages[0], messages
        assert messages[0].startswith("pmemd.yaml:3:")  # located at the region's line
        assert result.state is PlanState.INVALID_CONFIG


def test_auto_placed_system_ram_on_large_blocks_says_how_to_fix_it() -> None:
    cfg = config("""\
        version: 1
        regions:
          - {name: hot, size: 1G, mode: system-ram}
    """)
    (problem,) = plan(cfg, facts("server-64g-2node")).problems
    assert "set its offset, or memory.alignment to the block size" in problem.message


@pytest.mark.parametrize(("start", "size", "block", "added"), [
    (4 * G, 1 * G, 128 * M, 1 * G - 128 * M),  # the first block holds the info block
    (4 * G, 128 * M, 128 * M, 0),
    (8 * G, 4 * G, 2 * G, 2 * G),
    (4 * G + 64 * M, 1 * G, 128 * M, 1 * G - 128 * M),  # whole blocks only
])
def test_hotplug_share(start: int, size: int, block: int, added: int) -> None:
    assert HotplugShare("r", MemRange.sized(start, size), block).added == added


def test_each_mode_needs_its_kernel_options() -> None:
    base = facts("server-16g")
    assert base.kernel.next_config is not None
    cfg = config("""\
        version: 1
        regions:
          - {name: a, size: 1G, offset: 4G, mode: fsdax, filesystem: {type: ext4,
             mountpoint: /a}}
          - {name: b, size: 1G, offset: 6G, mode: devdax}
          - {name: c, size: 1G, offset: 8G, mode: system-ram}
    """)
    assert [r.option for r in mode_requirements(cfg.regions)] == [
        "CONFIG_NVDIMM_PFN", "CONFIG_NVDIMM_DAX", "CONFIG_DEV_DAX", "CONFIG_DEV_DAX_PMEM",
        "CONFIG_DEV_DAX_KMEM", "CONFIG_MEMORY_HOTPLUG"]
    assert [w for w in plan(cfg, base).warnings if w.code == "kernel-support"] == []
    crippled = dict(base.kernel.next_config, CONFIG_DEV_DAX_KMEM="n", CONFIG_FS_DAX_PMD="n",
                    CONFIG_NVDIMM_PFN="n")
    weak = dataclasses.replace(base, kernel=dataclasses.replace(base.kernel,
                                                                 next_config=crippled))
    messages = [w.message for w in plan(cfg, weak).warnings if w.code == "kernel-support"]
    assert len(messages) == 3, messages
    assert "lacks CONFIG_FS_DAX_PMD (needs y): 2 MiB (PMD) faults on DAX files" in messages[0]
    assert "lacks CONFIG_NVDIMM_PFN" in messages[1]
    assert "lacks CONFIG_DEV_DAX_KMEM (needs y or m)" in messages[2]


@pytest.mark.parametrize(("mode", "taken"), [
    ("raw", 2 * G),
    ("fsdax", 2 * G),
    ("devdax", 2 * G),
    ("system-ram", 128 * M),  # all but the first memory block comes back as RAM
])
def test_system_ram_regions_give_their_memory_back(mode: str, taken: int) -> None:
    machine = facts("server-16g")
    result = plan(config(f"""\
        version: 1
        regions:
          - {{name: r, size: 2G, offset: 4G, mode: {mode}}}
    """), machine)
    assert result.memory_left == machine.memory.usable_total - taken


def test_min_system_ram_counts_what_system_ram_gives_back() -> None:
    machine = facts("server-16g")
    usable = machine.memory.usable_total
    text = """\
        version: 1
        memory: {{min-system-ram: {left}}}
        regions:
          - {{name: r, size: 2G, offset: 4G, mode: {mode}}}
    """
    left = f"{(usable - 2 * G) // M + 512}M"  # more than a 2G raw region leaves
    assert plan(config(text.format(left=left, mode="raw")), machine).problems
    assert not plan(config(text.format(left=left, mode="system-ram")), machine).problems
