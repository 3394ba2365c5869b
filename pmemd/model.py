"""Frozen dataclasses shared by the pure core: config, memory map, command line, plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pmemd.errors import Location, Problem
from pmemd.sizes import format_bytes

MiB = 1 << 20
GiB = 1 << 30

DEFAULT_ALIGNMENT = 128 * MiB  # the x86_64 memory section
MIN_ALIGNMENT = 2 * MiB  # below this the kernel cannot map the range at all
DEFAULT_MIN_SYSTEM_RAM = 1 * GiB
XFS_MIN_SIZE = 300 * MiB  # mkfs.xfs (xfsprogs >= 5.19): "Filesystem must be larger than 300MB"


# --- config -----------------------------------------------------------------------------


class BootloaderChoice(StrEnum):
    AUTO = "auto"
    GRUBBY = "grubby"
    UPDATE_GRUB = "update-grub"
    GRUB2_MKCONFIG = "grub2-mkconfig"
    KERNEL_INSTALL = "kernel-install"


class RebootPolicy(StrEnum):
    NEVER = "never"
    AUTO = "auto"


class KaslrPolicy(StrEnum):
    WARN = "warn"
    DISABLE = "disable"


class FsType(StrEnum):
    EXT4 = "ext4"
    XFS = "xfs"


class OnBoot(StrEnum):
    RECREATE = "recreate"
    KEEP = "keep"


@dataclass(frozen=True)
class Filesystem:
    type: FsType
    mountpoint: str
    options: tuple[str, ...] = ()
    on_boot: OnBoot = OnBoot.RECREATE


@dataclass(frozen=True)
class Region:
    name: str
    size: int
    offset: int | None = None
    filesystem: Filesystem | None = None
    index: int = 0  # position in the config's regions list, for messages


@dataclass(frozen=True)
class BootSettings:
    bootloader: BootloaderChoice = BootloaderChoice.AUTO
    reboot: RebootPolicy = RebootPolicy.NEVER
    kaslr: KaslrPolicy = KaslrPolicy.WARN


@dataclass(frozen=True)
class MemorySettings:
    alignment: int = DEFAULT_ALIGNMENT
    min_system_ram: int = DEFAULT_MIN_SYSTEM_RAM


@dataclass(frozen=True)
class ConfigSource:
    """Where a config came from, kept so later stages can point at the right line."""

    path: str
    lines: tuple[str, ...] = ()
    locations: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def locate(self, key: str) -> Location | None:
        """Location of ``key`` (e.g. ``regions[1].offset``), falling back to its parents."""
        probe = key
        while probe:
            if probe in self.locations:
                line, column = self.locations[probe]
                return Location(self.path, line, column)
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return None

    def problem(self, key: str, message: str, region: int | None = None) -> Problem:
        location = self.locate(key)
        source_line = None
        if location is not None and 0 < location.line <= len(self.lines):
            source_line = self.lines[location.line - 1]
        return Problem(message, key, location, source_line, region)


@dataclass(frozen=True)
class Config:
    version: int = 1
    boot: BootSettings = BootSettings()
    memory: MemorySettings = MemorySettings()
    regions: tuple[Region, ...] = ()
    source: ConfigSource = field(default=ConfigSource("<default>"), compare=False)

    def region(self, name: str) -> Region | None:
        return next((r for r in self.regions if r.name == name), None)


# --- memory map ---------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class MemRange:
    """A physical address range; ``end`` is exclusive."""

    start: int
    end: int

    @classmethod
    def sized(cls, start: int, size: int) -> MemRange:
        return cls(start, start + size)

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def last(self) -> int:
        return self.end - 1

    def overlaps(self, other: MemRange) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, other: MemRange) -> bool:
        return self.start <= other.start and other.end <= self.end

    def __str__(self) -> str:
        """Inclusive, as the kernel prints ranges: ``0x100000000-0x3ffffffff``."""
        return f"0x{self.start:x}-0x{self.last:x}"

    def describe(self) -> str:
        return f"{self} ({format_bytes(self.size)})"


class RangeKind(StrEnum):
    USABLE = "usable"
    RESERVED = "reserved"
    ACPI = "acpi"
    ACPI_NVS = "acpi-nvs"
    UNUSABLE = "unusable"
    PERSISTENT_LEGACY = "persistent-legacy"  # e820 type 12: what memmap=nn!ss creates
    PERSISTENT = "persistent"  # e820 type 7 (ACPI NFIT-described)
    SOFT_RESERVED = "soft-reserved"
    OTHER = "other"


@dataclass(frozen=True)
class E820Entry:
    range: MemRange
    kind: RangeKind
    label: str  # the wording of the source (sysfs type, iomem name, dmesg type)


@dataclass(frozen=True)
class MemoryMap:
    """The firmware map (before memmap= edits) and, when known, the edited map of this boot."""

    firmware: tuple[E820Entry, ...]
    firmware_source: str
    edited: tuple[E820Entry, ...] | None = None
    edited_source: str | None = None
    kernel_image: tuple[MemRange, ...] = ()  # "Kernel code/rodata/data/bss" of this boot

    @property
    def usable(self) -> tuple[MemRange, ...]:
        return tuple(e.range for e in self.firmware if e.kind is RangeKind.USABLE)

    @property
    def usable_total(self) -> int:
        return sum(r.size for r in self.usable)

    @property
    def persistent(self) -> tuple[MemRange, ...]:
        """Type-12 ranges active on this boot (empty when the edited map is unknown)."""
        entries = self.edited or ()
        return tuple(e.range for e in entries if e.kind is RangeKind.PERSISTENT_LEGACY)


# --- kernel command line -------------------------------------------------------------------


class MemmapKind(StrEnum):
    PERSISTENT = "persistent"  # nn!ss
    RAM = "ram"  # nn@ss
    ACPI = "acpi"  # nn#ss
    RESERVED = "reserved"  # nn$ss
    RETYPE = "retype"  # nn%ss-t+t
    LIMIT = "limit"  # bare nn: like mem=nn
    EXACTMAP = "exactmap"
    INVALID = "invalid"  # the kernel read nothing


@dataclass(frozen=True)
class MemmapItem:
    """One comma-separated item of a ``memmap=`` argument, as the kernel reads it."""

    text: str
    kind: MemmapKind
    size: int = 0
    start: int | None = None
    junk: str = ""  # what the kernel did not parse; the part before it was still applied

    @property
    def range(self) -> MemRange | None:
        if self.start is None:
            return None
        return MemRange.sized(self.start, self.size)

    @property
    def clean(self) -> bool:
        return not self.junk and self.kind is not MemmapKind.INVALID


@dataclass(frozen=True)
class KernelArg:
    """One command-line argument: the text as written and the key/value the kernel sees."""

    text: str
    key: str
    value: str | None
    after_dashdash: bool = False  # passed to init, not seen as a kernel parameter


@dataclass(frozen=True)
class Cmdline:
    args: tuple[KernelArg, ...]

    def has_flag(self, key: str) -> bool:
        return any(a.key == key and not a.after_dashdash for a in self.args)

    def values(self, key: str) -> tuple[str, ...]:
        return tuple(a.value for a in self.args
                     if a.key == key and a.value is not None and not a.after_dashdash)


# --- kernel -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelInfo:
    running_release: str | None
    next_release: str | None  # the kernel expected to boot next
    next_release_reason: str
    next_config: Mapping[str, str] | None  # CONFIG_* of the next kernel, None when unreadable
    next_config_path: str | None


# --- pmem devices -------------------------------------------------------------------------


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


@dataclass(frozen=True)
class MountEntry:
    """One line of ``/proc/self/mountinfo``."""

    dev: str  # major:minor of the mounted device
    mountpoint: str
    fstype: str
    source: str
    options: tuple[str, ...]  # per-mount options
    super_options: tuple[str, ...]  # per-superblock options (where dax=always shows)


@dataclass(frozen=True)
class DeviceFacts:
    """Everything pmemd reads about pmem devices and mounts on this boot."""

    bus: bool  # /sys/bus/nd exists (libnvdimm loaded)
    regions: tuple[NdRegion, ...] = ()
    devices: tuple[PmemDevice, ...] = ()
    mounts: tuple[MountEntry, ...] = ()
    addresses_readable: bool = True  # False: resource files are root-only


class DeviceState(StrEnum):
    READY = "ready"  # device present (and, with a filesystem, mounted with DAX)
    MISSING = "missing"  # no device at the region's address
    MISMATCH = "mismatch"  # a device at the region's address, but of another size
    NOT_DAX = "not-dax"  # the device or its mount is not DAX
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


# --- boot history (pmemd.history) ---------------------------------------------------------


class FsBasis(StrEnum):
    """Why make-filesystem made or kept a filesystem (recorded in the boot history)."""

    RECREATE = "recreate"  # on-boot: recreate
    BLANK = "blank"  # the device was blank
    KEPT_OWN = "kept-own"  # pmemd's filesystem from the previous boot, the range was pmem
    KEPT_FOUND = "kept-found"  # a filesystem of the configured type pmemd did not record
    WAS_RAM = "was-ram"  # the range was ordinary RAM on the previous boot
    UNTRUSTED = "untrusted"  # ... and it showed a signature anyway, which cannot be trusted
    LOST = "lost"  # pmemd's filesystem of the previous boot is gone (a power cycle)


@dataclass(frozen=True)
class BootRecord:
    """One boot in the history: which physical ranges were emulated pmem."""

    boot_id: str
    pmem: tuple[MemRange, ...] | None  # None: they could not be read on that boot

    def covers(self, rng: MemRange) -> bool:
        """Every byte of ``rng`` was pmem on that boot (never RAM)."""
        return any(p.contains(rng) for p in self.pmem or ())


@dataclass(frozen=True)
class FsRecord:
    """A filesystem pmemd made or kept on a range during one boot."""

    boot_id: str
    range: MemRange
    fstype: str
    uuid: str
    region: str
    action: str  # made | kept
    basis: FsBasis
    reason: str  # what make-filesystem said


@dataclass(frozen=True)
class BootHistory:
    """The last few boots, oldest first, as ``/var/lib/pmemd/boot-history`` says."""

    current: str | None  # this boot's id
    boots: tuple[BootRecord, ...] = ()
    filesystems: tuple[FsRecord, ...] = ()
    problem: str | None = None  # why the file could not be read (it is then ignored)

    @property
    def previous(self) -> BootRecord | None:
        """The latest boot recorded that is not this one."""
        earlier = [b for b in self.boots if b.boot_id != self.current]
        return earlier[-1] if earlier else None

    def filesystem(self, boot_id: str, rng: MemRange) -> FsRecord | None:
        found = [f for f in self.filesystems if f.boot_id == boot_id and f.range == rng]
        return found[-1] if found else None


@dataclass(frozen=True)
class MachineFacts:
    """What the pure planner needs to know about a machine."""

    memory: MemoryMap
    cmdline: Cmdline
    kernel: KernelInfo
    mem_total: int | None  # MemTotal from meminfo, for messages
    devices: DeviceFacts | None = None  # None: not read (device checks skipped)
    history: BootHistory | None = None  # None: not read (what make-filesystem did unknown)


# --- plan ---------------------------------------------------------------------------------


class PlanState(StrEnum):
    CONVERGED = "converged"
    CHANGES_PENDING = "changes-pending"
    REBOOT_REQUIRED = "reboot-required"
    DEGRADED = "degraded"
    INVALID_CONFIG = "invalid-config"


class Placement(StrEnum):
    CONFIG = "config"  # the config gave the offset
    AUTO = "auto"  # pmemd chose it


@dataclass(frozen=True)
class PlacedRegion:
    region: Region
    range: MemRange
    placement: Placement
    argument: str  # the canonical memmap= argument
    on_running_cmdline: bool


class ChangeAction(StrEnum):
    ADD = "add"
    REMOVE = "remove"
    KEEP = "keep"


@dataclass(frozen=True)
class CmdlineChange:
    action: ChangeAction
    argument: str
    reason: str


@dataclass(frozen=True)
class Finding:
    """A warning or note for the user; ``code`` is stable for JSON consumers."""

    code: str
    message: str
    region: str | None = None


@dataclass(frozen=True)
class ForeignMemmap:
    """A memmap= item on the command line that pmemd did not and would not write."""

    argument: str
    item: MemmapItem
    explanation: str


@dataclass(frozen=True)
class Plan:
    state: PlanState
    regions: tuple[PlacedRegion, ...]
    desired_args: tuple[str, ...]
    running_args: tuple[str, ...]
    changes: tuple[CmdlineChange, ...]
    foreign: tuple[ForeignMemmap, ...]
    warnings: tuple[Finding, ...]
    problems: tuple[Problem, ...]
    reboot_required: bool
    memory_total: int  # usable RAM in the firmware map
    memory_left: int  # what the regions leave to the system
    devices: tuple[RegionDevice, ...] = ()  # per region, when the devices were read
    unmatched_devices: tuple[PmemDevice, ...] = ()  # pmem devices at no configured address
    filesystems: tuple[FsRecord, ...] = ()  # what make-filesystem did on this boot, per region
