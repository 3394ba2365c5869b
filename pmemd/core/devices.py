"""(pure) pmem devices matched to regions by physical address, and whether each region is
ready: its device there and, with a filesystem, mounted with DAX.

A device is a region's when its namespace starts at the region's start address and is as
large — never by ``/dev/pmemN``, whose number follows probe order and can change between
boots. A region without a device gets the reason: the running command line lacks its
``memmap=`` option, the range is misaligned, or a driver is missing. What sysfs says is
read by :mod:`pmemd.machine.sysfs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pmemd.core.model import DEFAULT_ALIGNMENT, MIN_ALIGNMENT, NamespaceMode, PageMap, Region
from pmemd.core.mounts import MountEntry, has_dax_option, mount_at
from pmemd.core.ranges import MemRange
from pmemd.core.sizes import format_bytes
from pmemd.core.units import link_name


@dataclass(frozen=True)
class NdRegion:
    """A libnvdimm region (``/sys/bus/nd/devices/regionN``): one per memmap=nn!ss range."""

    name: str  # region0
    range: MemRange | None  # None when ``resource`` is unreadable (it is root-only)
    namespaces: tuple[str, ...] = ()  # namespace0.0 ...
    unbound: tuple[str, ...] = ()  # namespaces with data but no driver bound (no block device)


@dataclass(frozen=True)
class PmemDevice:
    """A pmem block device (``/sys/block/pmemN``) and the physical range behind it."""

    name: str  # pmem0: the kernel's probe order, never an identity
    namespace: str  # namespace0.0
    region: str | None  # region0
    range: MemRange | None  # namespace resource + size; None when unreadable (not root)
    size: int  # block device capacity in bytes (sectors x 512)
    dev: str  # "259:0"
    dax: bool | None  # queue/dax
    mode: str | None = None  # namespace mode: memory (fsdax), raw, safe (btt), dax
    pfn: str | None = None  # pfnX.Y when an fsdax info block claims the namespace


@dataclass(frozen=True)
class DaxCharDevice:
    """A device DAX instance (``/sys/bus/dax/devices/daxX.Y``) of a devdax namespace: the
    char device ``/dev/daxX.Y``, or memory handed to the kernel (system-ram)."""

    name: str  # dax0.0 (also the char device's name under /dev while in devdax mode)
    namespace: str  # namespace0.0
    region: str | None  # region0
    range: MemRange | None  # the namespace's resource + size; None when unreadable
    size: int  # the device's usable bytes (after the info block)
    dev: str  # "252:0"; empty when there is no char device
    driver: str | None  # device_dax (devdax) | kmem (system-ram) | None (unbound)
    align: int | None = None

    @property
    def mode(self) -> str:
        """daxctl's word for it: devdax | system-ram (unbound: none)."""
        return {"device_dax": "devdax", "kmem": "system-ram"}.get(self.driver or "", "none")


@dataclass(frozen=True)
class DeviceFacts:
    """Everything pmemd reads about pmem devices and mounts on this boot."""

    bus: bool  # /sys/bus/nd exists (libnvdimm loaded)
    regions: tuple[NdRegion, ...] = ()
    devices: tuple[PmemDevice, ...] = ()
    mounts: tuple[MountEntry, ...] = ()
    addresses_readable: bool = True  # False: resource files are root-only
    links: str = ""  # where udev names each device by address (empty: unknown)
    dax_devices: tuple[DaxCharDevice, ...] = ()  # devdax / system-ram namespaces

    def link(self, start: int) -> str | None:
        """The stable name of the device whose namespace starts at ``start``."""
        return link_name(self.links, start) if self.links else None


class DeviceState(StrEnum):
    READY = "ready"  # device present (and, with a filesystem, mounted with DAX)
    MISSING = "missing"  # no device at the region's address
    MISMATCH = "mismatch"  # a device at the region's address, but of another size
    NOT_DAX = "not-dax"  # the device or its mount is not DAX
    NO_PMD = "no-pmd"  # a DAX mount whose mappings fall back to 4 KiB faults (verify-dax)
    NOT_MOUNTED = "not-mounted"  # device ready, filesystem not mounted at its mountpoint
    UNKNOWN = "unknown"  # addresses unreadable (not root)


@dataclass(frozen=True)
class RegionDevice:
    """How a configured region looks on this boot: its device (matched by address) and why
    it is not ready."""

    region: str
    range: MemRange
    state: DeviceState
    reason: str
    device: PmemDevice | None = None
    mount: MountEntry | None = None
    chardev: DaxCharDevice | None = None  # devdax / system-ram regions: their dax device


def device_at(facts: DeviceFacts, rng: MemRange) -> PmemDevice | None:
    """The device whose namespace starts where ``rng`` starts (its size is checked apart)."""
    found = [d for d in facts.devices if d.range is not None and d.range.start == rng.start]
    return found[0] if found else None


def dax_device_at(facts: DeviceFacts, rng: MemRange) -> DaxCharDevice | None:
    """The dax device whose namespace starts where ``rng`` starts."""
    found = [d for d in facts.dax_devices if d.range is not None and d.range.start == rng.start]
    return found[0] if found else None


def _mode_unit(rng: MemRange) -> str:
    return f"pmemd-mode@0x{rng.start:x}.service"


def _block_mode_problem(region: Region, device: PmemDevice, rng: MemRange) -> str | None:
    """Why a block device at the region's address is not in the region's mode (a raw
    region accepts a device behind an info block: it is as DAX-capable)."""
    if region.mode is NamespaceMode.FSDAX and region.map is PageMap.DEV and device.pfn is None:
        return (f"{device.name} ({device.namespace}) has no fsdax info block yet; "
                f"{_mode_unit(rng)} makes it (pmemd set-mode {region.name})")
    return None


def match_dax_region(region: Region, rng: MemRange, facts: DeviceFacts, *, argument: str,
                     on_cmdline: bool, persistent: Sequence[MemRange] | None = None
                     ) -> RegionDevice:
    """A devdax or system-ram region: its dax device at the region's address, in the
    region's mode — or why not."""
    chardev = dax_device_at(facts, rng)
    if chardev is None:
        state, reason, device = identify(rng, facts, argument=argument, on_cmdline=on_cmdline,
                                         persistent=persistent)
        if device is not None:
            return RegionDevice(region.name, rng, DeviceState.MISMATCH, (
                f"{device.name} ({device.namespace}) is still a block device; "
                f"{_mode_unit(rng)} makes it {region.mode.value} "
                f"(pmemd set-mode {region.name})"), device)
        return RegionDevice(region.name, rng, state, reason)
    assert chardev.range is not None
    if chardev.range.size != rng.size:
        return RegionDevice(region.name, rng, DeviceState.MISMATCH, (
            f"{chardev.name} at 0x{rng.start:x} is {format_bytes(chardev.range.size)}, the "
            f"region is {format_bytes(rng.size)}: it is not this region's device"),
            chardev=chardev)
    if chardev.mode != region.mode.value:
        return RegionDevice(region.name, rng, DeviceState.MISMATCH, (
            f"{chardev.name} is in {chardev.mode} mode, the region asks for "
            f"{region.mode.value} ({_mode_unit(rng)}, pmemd set-mode {region.name})"),
            chardev=chardev)
    what = f"/dev/{chardev.name}" if region.mode is NamespaceMode.DEVDAX \
        else f"{chardev.name} online as System RAM"
    return RegionDevice(region.name, rng, DeviceState.READY, what, chardev=chardev)


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
    link = facts.link(rng.start)
    return DeviceState.READY, f"{device.name} ({link})" if link else device.name, device


def dax_problem(mount: MountEntry, device: PmemDevice) -> str | None:
    """Why ``mount`` of ``device`` is not a DAX mount, or ``None`` when it is."""
    if mount.dev != device.dev:
        return (f"{mount.mountpoint} holds {mount.source} (device {mount.dev}), not "
                f"{device.name} (device {device.dev})")
    if device.dax is False:
        return (f"{device.name} does not support DAX (queue/dax is 0; namespace mode "
                f"{device.mode or 'unknown'})")
    if not has_dax_option(mount):
        options = ",".join(mount.super_options)
        return (f"{mount.mountpoint} ({mount.fstype} on {device.name}) is mounted without DAX: "
                f"the kernel shows '{options}', no dax=always; {mount.fstype} turns DAX off "
                "when it cannot use it (see the kernel log)")
    return None


def match_region(region: Region, rng: MemRange, facts: DeviceFacts, *, argument: str,
                 on_cmdline: bool, persistent: Sequence[MemRange] | None = None
                 ) -> RegionDevice:
    """The state of one configured region on this boot: its device and, with a filesystem,
    its DAX mount — or why not."""
    if not region.block:
        return match_dax_region(region, rng, facts, argument=argument, on_cmdline=on_cmdline,
                                persistent=persistent)
    state, reason, device = identify(rng, facts, argument=argument, on_cmdline=on_cmdline,
                                     persistent=persistent)
    if state is DeviceState.READY and device is not None:
        problem = _block_mode_problem(region, device, rng)
        if problem is not None:
            return RegionDevice(region.name, rng, DeviceState.MISMATCH, problem, device)
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
