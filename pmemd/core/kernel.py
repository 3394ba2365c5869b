"""(pure) Kernel build configs, kernel version ordering, and what pmem needs from a kernel."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_CONFIG_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_CONFIG_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse_kernel_config(text: str) -> dict[str, str]:
    """``/boot/config-<release>`` → {option: value}; unset options map to ``"n"``."""
    options: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if match := _CONFIG_SET.match(line):
            options[match[1]] = match[2].strip('"')
        elif match := _CONFIG_UNSET.match(line):
            options[match[1]] = "n"
    return options


def version_key(release: str) -> tuple[tuple[int, int | str], ...]:
    """Order like ``sort -V`` (and GRUB's default-kernel pick): numbers numerically."""
    parts: list[tuple[int, int | str]] = []
    for chunk in re.findall(r"\d+|[^\d]+", release):
        parts.append((1, int(chunk)) if chunk.isdigit() else (0, chunk))
    return tuple(parts)


def newest(releases: Iterable[str]) -> str | None:
    ordered = sorted(releases, key=version_key)
    return ordered[-1] if ordered else None


@dataclass(frozen=True)
class Requirement:
    option: str
    values: tuple[str, ...]  # acceptable settings
    why: str


BASE_REQUIREMENTS = (
    Requirement("CONFIG_X86_PMEM_LEGACY", ("y", "m"),
                "turns memmap=nn!ss ranges into nvdimm regions (nd_e820)"),
    Requirement("CONFIG_LIBNVDIMM", ("y", "m"), "the nvdimm subsystem"),
    Requirement("CONFIG_BLK_DEV_PMEM", ("y", "m"), "creates the /dev/pmemN block devices"),
)


DAX_REQUIREMENTS = (
    Requirement("CONFIG_FS_DAX", ("y",), "filesystem DAX (mount -o dax)"),
    Requirement("CONFIG_ZONE_DEVICE", ("y",), "struct pages for pmem, needed by filesystem DAX"),
)


FS_REQUIREMENTS = {
    "ext4": Requirement("CONFIG_EXT4_FS", ("y", "m"), "ext4"),
    "xfs": Requirement("CONFIG_XFS_FS", ("y", "m"), "xfs"),
}


def missing_requirements(config: Mapping[str, str],
                         needed: Iterable[Requirement]) -> tuple[Requirement, ...]:
    return tuple(r for r in needed if config.get(r.option, "n") not in r.values)


def kaslr_built_in(config: Mapping[str, str] | None) -> bool | None:
    """Whether the kernel randomizes its base (``None``: config unknown)."""
    if config is None:
        return None
    return config.get("CONFIG_RANDOMIZE_BASE") == "y"


@dataclass(frozen=True)
class KernelInfo:
    running_release: str | None
    next_release: str | None  # the kernel expected to boot next
    next_release_reason: str
    next_config: Mapping[str, str] | None  # CONFIG_* of the next kernel, None when unreadable
    next_config_path: str | None
