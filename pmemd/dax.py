"""Is a region's filesystem really DAX? Mounts from ``/proc/self/mountinfo`` and the device's
``queue/dax`` flag decide; xfs mounts without DAX when it cannot have it ("Turning off DAX"),
so a mount that asked for ``dax=always`` proves nothing until it is checked."""

from __future__ import annotations

from collections.abc import Sequence

from pmemd.errors import MachineError, PmemdError
from pmemd.machine import Machine
from pmemd.model import MountEntry, PmemDevice

DAX_OPTIONS = ("dax=always", "dax")  # dax=always since Linux 5.8/5.9; plain dax before
_ESCAPES = {"\\040": " ", "\\011": "\t", "\\012": "\n", "\\134": "\\"}


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
            raise MachineError(f"mountinfo line {number} is not in the kernel's format: "
                               f"{line!r}") from None
        mounts.append(MountEntry(
            dev=dev,
            mountpoint=_unescape(mountpoint),
            fstype=fstype,
            source=_unescape(source),
            options=tuple(options.split(",")),
            super_options=tuple(super_options.split(",")),
        ))
    return tuple(mounts)


def read_mounts(machine: Machine) -> tuple[MountEntry, ...]:
    text = machine.read_text(machine.mountinfo)
    if text is None:
        raise MachineError(f"{machine.mountinfo}: missing (is /proc mounted?)")
    try:
        return parse_mountinfo(text)
    except MachineError as err:
        raise MachineError(f"{machine.mountinfo}: {err}") from None


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


class NotDaxError(PmemdError):
    """A region's filesystem is not mounted with DAX."""

    dbus_name = "io.pmemd1.Error.NotDax"


def verify_mount(device: PmemDevice, mountpoint: str, mounts: Sequence[MountEntry]
                 ) -> MountEntry:
    """The DAX mount of ``device`` at ``mountpoint``, or :class:`NotDaxError` saying why not."""
    mount = mount_at(mounts, mountpoint)
    if mount is None:
        raise NotDaxError(f"{mountpoint} is not mounted")
    problem = dax_problem(mount, device)
    if problem is not None:
        raise NotDaxError(problem)
    return mount
