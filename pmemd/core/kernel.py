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


@dataclass(frozen=True)
class CmdlineLimit:
    """How much of its command line a kernel keeps: ``COMMAND_LINE_SIZE`` bytes with the
    final NUL (``arch/*/include/{uapi/,}asm/setup.h``); the rest is cut off."""

    arch: str
    size: int
    builtin: str = ""  # CONFIG_CMDLINE, put before the bootloader's (CONFIG_CMDLINE_BOOL)

    @property
    def longest(self) -> int:
        return self.size - 1


# (the option that names the arch, the arch, COMMAND_LINE_SIZE); the first match wins.
_ARCH_LIMITS = (
    ("CONFIG_X86_64", "x86_64", 2048),
    ("CONFIG_X86", "i386", 2048),
    ("CONFIG_ARM64", "arm64", 2048),
    ("CONFIG_PPC64", "powerpc", 2048),
    ("CONFIG_PPC", "powerpc", 2048),
    ("CONFIG_S390", "s390", 4096),  # CONFIG_COMMAND_LINE_SIZE when set
)
DEFAULT_LIMIT = CmdlineLimit("x86_64", 2048)  # memmap=nn!ss (X86_PMEM_LEGACY) is x86's


def command_line_limit(config: Mapping[str, str] | None) -> CmdlineLimit:
    """The limit of the kernel whose build config is ``config`` (x86_64 when unknown)."""
    if config is None:
        return DEFAULT_LIMIT
    builtin = ""
    if config.get("CONFIG_CMDLINE_BOOL") == "y" and config.get("CONFIG_CMDLINE_OVERRIDE") != "y":
        builtin = config.get("CONFIG_CMDLINE", "")
    for option, arch, size in _ARCH_LIMITS:
        if config.get(option) == "y":
            configured = config.get("CONFIG_COMMAND_LINE_SIZE", "")
            own = arch == "s390" and configured.isascii() and configured.isdigit()
            return CmdlineLimit(arch, int(configured) if own else size, builtin)
    return CmdlineLimit(DEFAULT_LIMIT.arch, DEFAULT_LIMIT.size, builtin)
