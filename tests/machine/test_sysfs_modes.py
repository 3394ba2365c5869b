"""A region's device in every namespace mode, on sysfs trees laid out as the guest showed
them (tests/machine/modes.py): still found by its namespace's physical address, and ready
only in the region's mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmemd.core.devices import DeviceState, match_region
from pmemd.core.model import NamespaceMode, PageMap, Region
from pmemd.core.ranges import MemRange
from pmemd.machine.sysfs import namespace_at, read_devices
from tests.machine.modes import INFO, SIZE, START, make_devdax, make_fsdax, raw_machine

RNG = MemRange.sized(START, SIZE)
MEMMAP = "memmap=512M!1G"


def region(mode: NamespaceMode, map: PageMap = PageMap.DEV) -> Region:
    return Region("data", SIZE, START, mode=mode, map=map)


def test_an_fsdax_disk_is_the_region_s_by_its_namespace_address(tmp_path: Path) -> None:
    machine = raw_machine(tmp_path)
    make_fsdax(machine)
    facts = read_devices(machine)
    [disk] = facts.devices
    assert (disk.name, disk.namespace, disk.region, disk.pfn) == \
        ("pmem0", "namespace0.0", "region0", "pfn0.1")
    assert disk.range == RNG and disk.size == SIZE - INFO
    found = match_region(region(NamespaceMode.FSDAX), RNG, facts, argument=MEMMAP,
                         on_cmdline=True)
    assert (found.state, found.device) == (DeviceState.READY, disk), found.reason
    assert namespace_at(machine, RNG) == "namespace0.0"


def test_a_raw_disk_is_not_ready_for_fsdax_map_dev_until_set_mode_ran(tmp_path: Path) -> None:
    facts = read_devices(raw_machine(tmp_path))
    found = match_region(region(NamespaceMode.FSDAX), RNG, facts, argument=MEMMAP,
                         on_cmdline=True)
    assert found.state is DeviceState.MISMATCH
    assert "pmemd-mode@0x40000000.service" in found.reason
    # fsdax map=mem is what the kernel makes of a memmap= namespace: ready as it is
    mem = match_region(region(NamespaceMode.FSDAX, PageMap.MEM), RNG, facts, argument=MEMMAP,
                       on_cmdline=True)
    assert mem.state is DeviceState.READY, mem.reason


@pytest.mark.parametrize(("system_ram", "mode", "state"), [
    (False, NamespaceMode.DEVDAX, DeviceState.READY),
    (True, NamespaceMode.SYSTEM_RAM, DeviceState.READY),
    (True, NamespaceMode.DEVDAX, DeviceState.MISMATCH),
    (False, NamespaceMode.SYSTEM_RAM, DeviceState.MISMATCH),
])
def test_a_dax_device_is_the_region_s_in_its_mode(tmp_path: Path, system_ram: bool,
                                                  mode: NamespaceMode, state: DeviceState
                                                  ) -> None:
    machine = raw_machine(tmp_path)
    make_devdax(machine, system_ram=system_ram)
    facts = read_devices(machine)
    assert facts.devices == ()
    [dax] = facts.dax_devices
    assert (dax.name, dax.namespace, dax.region, dax.range, dax.size, dax.dev, dax.align) == \
        ("dax0.0", "namespace0.0", "region0", RNG, SIZE - INFO, "252:0", 2 << 20)
    assert dax.mode == ("system-ram" if system_ram else "devdax")
    found = match_region(region(mode), RNG, facts, argument=MEMMAP, on_cmdline=True)
    assert (found.state, found.chardev) == (state, dax), found.reason
    assert namespace_at(machine, RNG) == "namespace0.0"


def test_a_devdax_region_whose_namespace_is_still_a_disk_says_which_unit_converts_it(
        tmp_path: Path) -> None:
    facts = read_devices(raw_machine(tmp_path))
    found = match_region(region(NamespaceMode.DEVDAX), RNG, facts, argument=MEMMAP,
                         on_cmdline=True)
    assert found.state is DeviceState.MISMATCH and found.device is not None
    assert "pmemd-mode@0x40000000.service" in found.reason and "pmem0" in found.reason


def test_no_namespace_at_another_address(tmp_path: Path) -> None:
    assert namespace_at(raw_machine(tmp_path), MemRange.sized(2 * START, SIZE)) is None
