"""pmem devices as sysfs shows them: the nvdimm bus's regions and namespaces and the pmem
block devices, each with the physical range behind it, read into
:class:`~pmemd.core.devices.DeviceFacts` (matched to regions in :mod:`pmemd.core.devices`).

Physical addresses (``resource``) are readable by root only; read by anyone else the facts
say so (``addresses_readable``) rather than guess.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from pmemd.core.devices import DaxCharDevice, DeviceFacts, NdRegion, PmemDevice
from pmemd.core.mounts import MountEntry
from pmemd.core.ranges import MemRange
from pmemd.core.u64 import U64Error, parse_dec_u64, parse_hex_u64
from pmemd.errors import MachineError
from pmemd.machine.root import PMEM_LINK_DIR, Machine

SECTOR = 512  # /sys/block/*/size counts 512-byte sectors whatever the device's block size
_PMEM_NAME = re.compile(r"pmem[0-9]+")
_REGION_NAME = re.compile(r"region[0-9]+")
_DAX_NAME = re.compile(r"dax[0-9]+\.[0-9]+")
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


def _number(path: Path, *, hexadecimal: bool = False) -> int | None:
    """A sysfs number as the kernel writes it: ``%#llx`` (``resource``) or ``%llu``."""
    text = _attr(path)
    if text is None:
        return None
    try:
        return parse_hex_u64(text, prefix=True) if hexadecimal else parse_dec_u64(text)
    except U64Error as err:
        raise MachineError(f"{path}: {err}") from None


def _range(directory: Path) -> MemRange | None:
    """A namespace's or region's physical range from its ``resource`` and ``size``."""
    start = _number(directory / "resource", hexadecimal=True)
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


def _namespace_of(parent: Path) -> Path:
    """The namespace behind ``parent``: itself, or the one a pfnX.Y / btt / dax device (an
    info block) names in its ``namespace`` attribute."""
    claimed_by = _attr(parent / "namespace")
    return parent.parent / claimed_by if claimed_by else parent


def _region_and_range(namespace: Path) -> tuple[str | None, MemRange | None, bool]:
    region = namespace.parent.name if namespace.parent.name.startswith("region") else None
    try:
        return region, _range(namespace), True
    except _Unreadable:
        return region, None, False


def _read_block(entry: Path) -> tuple[PmemDevice, bool]:
    link = entry / "device"
    if not link.exists():
        raise MachineError(f"{link}: missing; {entry.name} is not a pmem namespace's disk")
    parent = Path(os.path.realpath(link))
    namespace = _namespace_of(parent)
    region, rng, readable = _region_and_range(namespace)
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
        pfn=parent.name if parent.name.startswith("pfn") else None,
    )
    return device, readable


def _read_dax(entry: Path) -> tuple[DaxCharDevice, bool]:
    """A device DAX instance: ``/sys/bus/dax/devices/daxX.Y``, whose parent is the nd dax
    device (the info block) that names its namespace."""
    directory = Path(os.path.realpath(entry))
    namespace = _namespace_of(directory.parent)
    region, rng, readable = _region_and_range(namespace)
    return DaxCharDevice(
        name=entry.name,
        namespace=namespace.name,
        region=region,
        range=rng,
        size=_number(directory / "size") or 0,
        dev=_attr(directory / "dev") or "",
        driver=_driver(directory),
        align=_number(directory / "align"),
    ), readable


def read_dax_devices(machine: Machine) -> tuple[tuple[DaxCharDevice, ...], bool]:
    """The device DAX instances of this boot (devdax and system-ram namespaces)."""
    bus = machine.sys_dax_devices
    if not bus.is_dir():
        return (), True
    devices, readable = [], True
    for entry in sorted(bus.iterdir(), key=_natural):
        if _DAX_NAME.fullmatch(entry.name):
            device, ok = _read_dax(entry)
            devices.append(device)
            readable = readable and ok
    return tuple(devices), readable


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
    dax_devices, dax_readable = read_dax_devices(machine)
    return DeviceFacts(bus=bus.is_dir(), regions=tuple(regions), devices=tuple(devices),
                       mounts=tuple(mounts), addresses_readable=readable and dax_readable,
                       links=PMEM_LINK_DIR, dax_devices=dax_devices)


def namespace_at(machine: Machine, rng: MemRange) -> str | None:
    """The namespace (``namespaceX.Y``) that starts at ``rng``'s start address and is as
    large, whatever claims it now; ``None`` when there is none (yet)."""
    bus = machine.sys_nd_devices
    if not bus.is_dir():
        return None
    for entry in sorted(bus.iterdir(), key=_natural):
        if not _NAMESPACE_NAME.fullmatch(entry.name):
            continue
        try:
            found = _range(entry)
        except _Unreadable:
            raise MachineError(f"{entry}/resource: only root may read it") from None
        if found == rng:
            return entry.name
    return None
