"""Which device is a region's on this boot: found by the physical address and size of its
namespace (never by ``/dev/pmemN``, which follows probe order), or the reason there is
none. What the units' commands (make-filesystem, verify-dax) and the D-Bus service act on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pmemd.core.devices import DeviceState, PmemDevice, identify
from pmemd.core.memmap import render_memmap_arg, reserved_ranges
from pmemd.core.model import Config, Region
from pmemd.core.placement import place_regions
from pmemd.core.ranges import MemRange
from pmemd.errors import ConfigError, NoDevice, NoSuchRegion
from pmemd.machine.facts import read_cmdline
from pmemd.machine.memory import read_memory_map
from pmemd.machine.root import Machine
from pmemd.machine.sysfs import read_devices


@dataclass(frozen=True)
class Located:
    region: Region
    range: MemRange
    device: PmemDevice
    node: Path  # /dev/pmemN under the machine's root


def place_region(machine: Machine, config: Config, name: str) -> tuple[Region, MemRange]:
    """Region ``name`` and its physical range on this machine; else :class:`NoSuchRegion`
    or :class:`ConfigError` (it cannot be placed)."""
    region = config.region(name)
    if region is None:
        raise NoSuchRegion(name, [r.name for r in config.regions], config.source.path)
    placed, problems = place_regions(config, read_memory_map(machine))
    mine = next((p for p in placed if p.region.name == name), None)
    if mine is None:
        raise ConfigError(problems)
    return region, mine.range


def locate_region(machine: Machine, config: Config, name: str) -> Located:
    """Region ``name``'s device on this boot, proven by address and size; else
    :class:`NoSuchRegion`, :class:`ConfigError` (it cannot be placed) or
    :class:`NoDevice` saying why there is none."""
    region, rng = place_region(machine, config, name)
    state, reason, device = identify(rng, read_devices(machine),
                                     argument=render_memmap_arg(rng),
                                     on_cmdline=rng in reserved_ranges(read_cmdline(machine)))
    if device is None or state is DeviceState.MISMATCH:
        raise NoDevice(f"region {name!r} ({rng}) has no device: {reason}")
    return Located(region, rng, device, machine.dev_node(device.name))
