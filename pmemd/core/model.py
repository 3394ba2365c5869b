"""(pure) What the config says, typed: frozen dataclasses and the enums of its choices.

:mod:`pmemd.core.config` builds these from ``pmemd.yaml``; everything downstream reads them
and never the YAML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pmemd.core.ranges import GiB, KiB, MiB
from pmemd.errors import Location, Problem

DEFAULT_ALIGNMENT = 128 * MiB  # the x86_64 memory section
MIN_ALIGNMENT = 2 * MiB  # below this the kernel cannot map the range at all
DEFAULT_MIN_SYSTEM_RAM = 1 * GiB
XFS_MIN_SIZE = 300 * MiB  # mkfs.xfs (xfsprogs >= 5.19): "Filesystem must be larger than 300MB"


class BootloaderChoice(StrEnum):
    AUTO = "auto"
    GRUBBY = "grubby"
    UPDATE_GRUB = "update-grub"
    GRUB2_MKCONFIG = "grub2-mkconfig"
    KERNEL_INSTALL = "kernel-install"


class RebootPolicy(StrEnum):
    NEVER = "never"
    AUTO = "auto"


class TrialMode(StrEnum):
    AUTO = "auto"  # a change is booted once before it becomes the default, where possible
    NEVER = "never"  # the default entry is changed directly
    REQUIRED = "required"  # only through a trial: where none is possible, nothing is written


class KaslrPolicy(StrEnum):
    WARN = "warn"
    DISABLE = "disable"


class FsType(StrEnum):
    EXT4 = "ext4"
    XFS = "xfs"


class OnBoot(StrEnum):
    RECREATE = "recreate"
    KEEP = "keep"


class NamespaceMode(StrEnum):
    """What a region's namespace is made into at boot (ndctl's modes; ``system-ram`` is a
    devdax device handed to the page allocator by daxctl)."""

    RAW = "raw"  # the memmap= namespace as the kernel makes it (DAX-capable, pages in RAM)
    FSDAX = "fsdax"  # ndctl create-namespace -m fsdax: a pfn info block, /dev/pmemN
    DEVDAX = "devdax"  # ndctl create-namespace -m devdax: /dev/daxX.Y, no block device
    SYSTEM_RAM = "system-ram"  # devdax, then daxctl reconfigure-device --mode=system-ram


class PageMap(StrEnum):
    """Where an fsdax or devdax namespace keeps its ``struct page`` array (ndctl --map)."""

    MEM = "mem"  # in ordinary RAM: 64 bytes per 4 KiB page of the region
    DEV = "dev"  # on the namespace itself, before its data


FSDAX_ALIGNMENT = 16 * MiB  # ndctl create-namespace: fsdax and devdax namespaces' granule
DEVDAX_ALIGNS = (4 * KiB, 2 * MiB, 1 * GiB)  # devdax --align choices (x86_64 page sizes)
DEFAULT_DEVDAX_ALIGN = 2 * MiB


DAX_DEVICE_MODES = (NamespaceMode.DEVDAX, NamespaceMode.SYSTEM_RAM)  # a /dev/daxX.Y


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
    mode: NamespaceMode = NamespaceMode.RAW
    map: PageMap = PageMap.MEM  # fsdax and devdax (system-ram too)
    align: int = DEFAULT_DEVDAX_ALIGN  # devdax and system-ram: the device's fault size

    @property
    def block(self) -> bool:
        """The region's namespace is a block device (/dev/pmemN) that can hold a filesystem."""
        return self.mode in (NamespaceMode.RAW, NamespaceMode.FSDAX)


@dataclass(frozen=True)
class BootSettings:
    bootloader: BootloaderChoice = BootloaderChoice.AUTO
    reboot: RebootPolicy = RebootPolicy.NEVER
    kaslr: KaslrPolicy = KaslrPolicy.WARN
    trial: TrialMode = TrialMode.AUTO


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
