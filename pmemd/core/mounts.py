"""(pure) The mount table as ``/proc/self/mountinfo`` gives it, and what is mounted where.

Whether a mount is really DAX is decided from it (the per-superblock options, where the
kernel shows ``dax=always``) together with the device's ``queue/dax`` flag: see
:func:`pmemd.core.devices.dax_problem`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class MountEntry:
    """One line of ``/proc/self/mountinfo``."""

    dev: str  # major:minor of the mounted device
    mountpoint: str
    fstype: str
    source: str
    options: tuple[str, ...]  # per-mount options
    super_options: tuple[str, ...]  # per-superblock options (where dax=always shows)


DAX_OPTIONS = ("dax=always", "dax")  # dax=always since Linux 5.8/5.9; plain dax before
_ESCAPES = {"\\040": " ", "\\011": "\t", "\\012": "\n", "\\134": "\\"}


class MountinfoError(ValueError):
    """A line not in the kernel's mountinfo format."""


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    if "\\" not in field:
        return field
    for code, char in _ESCAPES.items():
        field = field.replace(code, char)
    return field


def parse_mountinfo(text: str) -> tuple[MountEntry, ...]:
    """``/proc/self/mountinfo`` → mounts, in mount order (later entries hide earlier ones)."""
    mounts = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(" ")
        try:
            dash = fields.index("-", 6)
            dev, mountpoint, options = fields[2], fields[4], fields[5]
            fstype, source, super_options = fields[dash + 1], fields[dash + 2], fields[dash + 3]
        except (ValueError, IndexError):
            raise MountinfoError(f"line {number} is not in the kernel's format: {line!r}"
                                 ) from None
        mounts.append(MountEntry(
            dev=dev,
            mountpoint=_unescape(mountpoint),
            fstype=fstype,
            source=_unescape(source),
            options=tuple(options.split(",")),
            super_options=tuple(super_options.split(",")),
        ))
    return tuple(mounts)


def mount_at(mounts: Sequence[MountEntry], mountpoint: str) -> MountEntry | None:
    """What is visible at ``mountpoint``: the last mount there."""
    found = None
    for mount in mounts:
        if mount.mountpoint == mountpoint:
            found = mount
    return found


def mounts_of(mounts: Sequence[MountEntry], dev: str) -> tuple[MountEntry, ...]:
    """Every mount of the device ``dev`` (``major:minor``)."""
    return tuple(m for m in mounts if m.dev == dev)


def has_dax_option(mount: MountEntry) -> bool:
    return any(option in DAX_OPTIONS for option in (*mount.super_options, *mount.options))
