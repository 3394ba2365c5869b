"""pmem block devices by physical address.

Reads ``/sys/bus/nd/devices`` and ``/sys/block/pmem*`` into :class:`DeviceFacts`, and
matches each device to a configured region by the start address and size of its
namespace — never by ``/dev/pmemN``, whose number follows probe order and can change
between boots. A region without a device gets the reason: the running command line lacks
its ``memmap=`` option, the range is misaligned, or a driver is missing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pmemd.dax import dax_problem, mount_at
from pmemd.errors import MachineError
from pmemd.machine import Machine, pmem_link
from pmemd.model import (
    DEFAULT_ALIGNMENT,
    MIN_ALIGNMENT,
    Config,
    DeviceFacts,
    DeviceState,
    MemRange,
    MountEntry,
    NdRegion,
    PlacedRegion,
    PmemDevice,
    Region,
    RegionDevice,
)
from pmemd.sizes import format_bytes

SECTOR = 512  # /sys/block/*/size counts 512-byte sectors whatever the device's block size
_PMEM_NAME = re.compile(r"pmem[0-9]+")
_REGION_NAME = re.compile(r"region[0-9]+")
_NAMESPACE_NAME = re.compile(r"namespace[0-9]+\.[0-9]+")  # not namespace_seed (a file)


class _Unreadable(Exception):
    """A sysfs attribute exists but only root may read it (``resource``)."""


def _natural(path: Path) -> tuple[str, int, str]:
    match = re.fullmatch(r"([a-z]+)([0-9]*)(.*)", path.name)
    if match is None:
        return (path.name, 0, "")
    return (match[1], int(match[2] or 0), match[3])


def _attr(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return None
    except PermissionError:
        raise _Unreadable(str(path)) from None
    except OSError as err:
        raise MachineError(f"{path}: {err.strerror}") from None


def _number(path: Path, base: int = 0) -> int | None:
    text = _attr(path)
    if text is None:
        return None
    try:
        return int(text, base)
    except ValueError:
        raise MachineError(f"{path}: expected a number, got {text!r}") from None


def _range(directory: Path) -> MemRange | None:
    """A namespace's or region's physical range from its ``resource`` and ``size``."""
    start = _number(directory / "resource", 16)
    size = _number(directory / "size")
    if start is None or size is None:
        return None
    return MemRange.sized(start, size)


def _driver(directory: Path) -> str | None:
    link = directory / "driver"
    return link.readlink().name if link.is_symlink() else None


def _read_region(directory: Path) -> tuple[NdRegion, bool]:
    readable = True
    try:
        rng = _range(directory)
    except _Unreadable:
        rng, readable = None, False
    namespaces = tuple(p.name for p in sorted(directory.iterdir(), key=_natural)
                       if _NAMESPACE_NAME.fullmatch(p.name) and p.is_dir())
    unbound = []
    for name in namespaces:
        namespace = directory / name
        if _driver(namespace) is None and (_number(namespace / "size") or 0) > 0:
            unbound.append(name)
    return NdRegion(directory.name, rng, namespaces, tuple(unbound)), readable


def _read_block(entry: Path) -> tuple[PmemDevice, bool]:
    link = entry / "device"
    if not link.exists():
        raise MachineError(f"{link}: missing; {entry.name} is not a pmem namespace's disk")
    parent = Path(os.path.realpath(link))
    namespace = parent
    claimed_by = _attr(parent / "namespace")  # pfnX.Y / btt / dax name their namespace
    if claimed_by:
        namespace = parent.parent / claimed_by
    region = namespace.parent.name if namespace.parent.name.startswith("region") else None
    readable = True
    try:
        rng = _range(namespace)
    except _Unreadable:
        rng, readable = None, False
    sectors = _number(entry / "size")
    dax = _attr(entry / "queue" / "dax")
    device = PmemDevice(
        name=entry.name,
        namespace=namespace.name,
        region=region,
        range=rng,
        size=(sectors or 0) * SECTOR,
        dev=_attr(entry / "dev") or "",
        dax=None if dax is None else dax == "1",
        mode=_attr(namespace / "mode"),
    )
    return device, readable


def read_devices(machine: Machine, mounts: Sequence[MountEntry] = ()) -> DeviceFacts:
    """The nvdimm regions and pmem block devices of this boot, as sysfs shows them."""
    bus = machine.sys_nd_devices
    readable = True
    regions = []
    if bus.is_dir():
        for directory in sorted(bus.iterdir(), key=_natural):
            if not _REGION_NAME.fullmatch(directory.name):
                continue
            region, ok = _read_region(directory)
            regions.append(region)
            readable = readable and ok
    devices = []
    block = machine.sys_block
    if block.is_dir():
        for entry in sorted(block.iterdir(), key=_natural):
            if not _PMEM_NAME.fullmatch(entry.name):
                continue  # pmemNs (btt, no DAX) and partitions are not region devices
            device, ok = _read_block(entry)
            devices.append(device)
            readable = readable and ok
    return DeviceFacts(bus=bus.is_dir(), regions=tuple(regions), devices=tuple(devices),
                       mounts=tuple(mounts), addresses_readable=readable)


# --- matching (pure) ----------------------------------------------------------------------


def device_at(facts: DeviceFacts, rng: MemRange) -> PmemDevice | None:
    """The device whose namespace starts where ``rng`` starts (its size is checked apart)."""
    found = [d for d in facts.devices if d.range is not None and d.range.start == rng.start]
    return found[0] if found else None


def _missing_reason(rng: MemRange, argument: str, on_cmdline: bool, facts: DeviceFacts,
                    persistent: Sequence[MemRange] | None) -> str:
    if not on_cmdline:
        return f"this boot's command line lacks {argument}: reboot to apply it"
    if rng.start % MIN_ALIGNMENT or rng.size % MIN_ALIGNMENT:
        return (f"misaligned: {rng} is not aligned to {format_bytes(MIN_ALIGNMENT)}, so the "
                "kernel cannot map it (dmesg: 'misaligned, unable to map')")
    if persistent is not None and rng not in persistent:
        return (f"the kernel did not reserve {rng}: this boot's memory map shows no persistent "
                "range there (see dmesg 'user: [mem ...]')")
    if not facts.bus:
        return ("driver missing: there is no nvdimm bus (/sys/bus/nd); load nd_e820 "
                "(CONFIG_X86_PMEM_LEGACY) and libnvdimm")
    region = next((r for r in facts.regions if r.range is not None and r.range == rng), None)
    if region is None:
        return (f"driver missing: nd_e820 made no nvdimm region at {rng}; load nd_e820 "
                "(CONFIG_X86_PMEM_LEGACY)")
    if region.unbound:
        names = ", ".join(region.unbound)
        if rng.start % DEFAULT_ALIGNMENT or rng.size % DEFAULT_ALIGNMENT:
            return (f"misaligned: {region.name} has {names} without a driver, and {rng} is not "
                    f"aligned to {format_bytes(DEFAULT_ALIGNMENT)} (the memory section); older "
                    "kernels refuse to map it (dmesg: 'misaligned, unable to map')")
        return (f"driver missing: {region.name} has {names} with no driver bound; load "
                "nd_pmem (CONFIG_BLK_DEV_PMEM), and see dmesg for why it refused")
    return f"driver missing: {region.name} at {rng} has no pmem block device (load nd_pmem)"


def identify(rng: MemRange, facts: DeviceFacts, *, argument: str, on_cmdline: bool,
             persistent: Sequence[MemRange] | None = None
             ) -> tuple[DeviceState, str, PmemDevice | None]:
    """The device at ``rng`` (by its namespace's start address, checked against the size),
    or the state and reason why there is none."""
    device = device_at(facts, rng)
    if device is None:
        if not facts.addresses_readable:
            return (DeviceState.UNKNOWN, "device addresses are readable by root only "
                    "(namespace resource files); run as root to check", None)
        return (DeviceState.MISSING,
                _missing_reason(rng, argument, on_cmdline, facts, persistent), None)
    assert device.range is not None
    if device.range.size != rng.size or device.size > rng.size:
        return (DeviceState.MISMATCH, (
            f"{device.name} at 0x{rng.start:x} is {format_bytes(device.range.size)}, the region "
            f"is {format_bytes(rng.size)}: it is not this region's device"), device)
    if device.dax is False:
        return (DeviceState.NOT_DAX, (
            f"{device.name} does not support DAX (queue/dax is 0, namespace {device.namespace} "
            f"mode {device.mode or 'unknown'})"), device)
    return DeviceState.READY, f"{device.name} ({pmem_link(rng.start)})", device


def match_region(region: Region, rng: MemRange, facts: DeviceFacts, *, argument: str,
                 on_cmdline: bool, persistent: Sequence[MemRange] | None = None
                 ) -> RegionDevice:
    """The state of one configured region on this boot: its device and, with a filesystem,
    its DAX mount — or why not."""
    state, reason, device = identify(rng, facts, argument=argument, on_cmdline=on_cmdline,
                                     persistent=persistent)
    fs = region.filesystem
    if state is not DeviceState.READY or device is None or fs is None:
        return RegionDevice(region.name, rng, state, reason, device)
    mount = mount_at(facts.mounts, fs.mountpoint)
    if mount is None:
        return RegionDevice(region.name, rng, DeviceState.NOT_MOUNTED, (
            f"{device.name} is present but {fs.mountpoint} is not mounted; see "
            f"'systemctl status {fs.mountpoint}'"), device)
    problem = dax_problem(mount, device)
    if problem is not None:
        state = DeviceState.MISMATCH if mount.dev != device.dev else DeviceState.NOT_DAX
        return RegionDevice(region.name, rng, state, problem, device, mount)
    return RegionDevice(region.name, rng, DeviceState.READY,
                        f"{device.name} mounted at {fs.mountpoint} with DAX", device, mount)


def unmatched_devices(facts: DeviceFacts, ranges: Sequence[MemRange]) -> tuple[PmemDevice, ...]:
    """Devices at no configured region's start address."""
    starts = {r.start for r in ranges}
    return tuple(d for d in facts.devices if d.range is not None and d.range.start not in starts)


# --- one region's device, for the commands units run --------------------------------------


@dataclass(frozen=True)
class Located:
    region: Region
    range: MemRange
    device: PmemDevice
    node: Path  # /dev/pmemN under the machine's root


def locate_region(machine: Machine, config: Config, name: str) -> Located:
    """Region ``name``'s device on this boot, proven by address and size, or a MachineError
    that says why there is none."""
    # Imported here: facts and plan import this module.
    from pmemd.facts import read_cmdline, read_memory_map
    from pmemd.memmap import memmap_args, render_memmap_arg
    from pmemd.plan import place_regions

    region = config.region(name)
    if region is None:
        known = ", ".join(r.name for r in config.regions) or "none"
        raise MachineError(f"no region {name!r} in {config.source.path} (regions: {known}); "
                           "after editing the config run 'systemctl daemon-reload'")
    placed, problems = place_regions(config, read_memory_map(machine))
    mine = next((p for p in placed if p.region.name == name), None)
    if mine is None:
        raise MachineError(f"region {name!r} cannot be placed: "
                           + "; ".join(p.message for p in problems))
    running = {item.range for arg in memmap_args(read_cmdline(machine)) for item in arg.items
               if item.clean and item.range is not None}
    state, reason, device = identify(mine.range, read_devices(machine),
                                     argument=render_memmap_arg(mine.range),
                                     on_cmdline=mine.range in running)
    if device is None or state is DeviceState.MISMATCH:
        raise MachineError(f"region {name!r} ({mine.range}) has no device: {reason}")
    return Located(region, mine.range, device, machine.dev_node(device.name))


def region_statuses(regions: Sequence[PlacedRegion], facts: DeviceFacts,
                    persistent: Sequence[MemRange] | None) -> tuple[RegionDevice, ...]:
    return tuple(match_region(p.region, p.range, facts, argument=p.argument,
                              on_cmdline=p.on_running_cmdline, persistent=persistent)
                 for p in regions)
