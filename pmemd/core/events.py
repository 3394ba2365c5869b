"""(pure) pmemd's journal events: the wire contract with ``journalctl MESSAGE_ID=…`` and
the message catalog (``catalog/pmemd.catalog``).

Each kind of event has one fixed 128-bit MESSAGE_ID, made once with ``systemd-id128 new``
and never changed: admins' filters and the catalog entries find events by it. The fields
(``PMEMD_REGION=``, ``PMEMD_REASON=`` …) are named here, once; the catalog's ``@FIELD@``
substitutions use the same names. Sending is :mod:`pmemd.machine.journal`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Priority(IntEnum):
    """syslog priorities, as the journal's ``PRIORITY=`` field carries them."""

    ERR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6


class MessageId(StrEnum):
    OPTIONS_WRITTEN = "9008b0113c96407d9fd3df0b58abbbda"
    REBOOT_REQUESTED = "eb1977afbd4142648b3fb76e130007d5"
    REBOOT_REFUSED = "9b38bab022b441e5a74bac3882181e92"
    TRIAL_ARMED = "80441029924e433c854e9921488a1eb8"
    TRIAL_COMMITTED = "273277de32704eef955f4ff3a350c36b"
    TRIAL_FAILED = "be69b14807254adf84f1532194eb6bda"
    FILESYSTEM_MADE = "58cf66442e794a07a667455d513a63f0"
    FILESYSTEM_KEPT = "68a42ca111cd41598297e22b5855d0c0"
    FILESYSTEM_REFUSED = "b04f1af9c779416c8253f158d5b33d6c"
    DAX_FAILED = "40a969e7bfd94bcc8566845ba81b63f4"
    NAMESPACE_CONFIGURED = "802e851c7ad1407f86ce097832363749"
    NAMESPACE_REFUSED = "4ff2d7dbe1244a18a29fb260f65fb779"
    PMD_FALLBACK = "6df3d9ffdd9c4ec889a63aa733f25e2a"


class Field(StrEnum):
    """pmemd's own journal fields (systemd's are MESSAGE, MESSAGE_ID, PRIORITY …)."""

    BOOTLOADER = "PMEMD_BOOTLOADER"  # the backend that wrote: update-grub, grubby, …
    OPTIONS_ADDED = "PMEMD_OPTIONS_ADDED"  # kernel options, space-separated
    OPTIONS_REMOVED = "PMEMD_OPTIONS_REMOVED"
    OPTIONS = "PMEMD_OPTIONS"  # the options a trial boot tries
    REGION = "PMEMD_REGION"
    DEVICE = "PMEMD_DEVICE"  # /dev/pmemN
    FSTYPE = "PMEMD_FSTYPE"
    UUID = "PMEMD_UUID"
    MOUNTPOINT = "PMEMD_MOUNTPOINT"
    REASON = "PMEMD_REASON"
    NAMESPACE = "PMEMD_NAMESPACE"  # namespace0.0
    MODE = "PMEMD_MODE"  # the region's namespace mode: fsdax, devdax, system-ram, raw


IDENTIFIER = "pmemd"  # SYSLOG_IDENTIFIER= of every event (journalctl -t pmemd)


@dataclass(frozen=True)
class Event:
    """One journal entry: its kind, priority, the one-line message and pmemd's fields."""

    message_id: MessageId
    priority: Priority
    message: str
    fields: tuple[tuple[Field, str], ...] = ()

    def entry(self) -> tuple[tuple[str, str], ...]:
        """The entry's fields in order, as the journal receives them (empty fields left
        out: the journal has no use for them)."""
        return (("MESSAGE", self.message), ("MESSAGE_ID", self.message_id.value),
                ("PRIORITY", str(int(self.priority))), ("SYSLOG_IDENTIFIER", IDENTIFIER),
                *((f.value, v) for f, v in self.fields if v))


def _words(options: Sequence[str]) -> str:
    return " ".join(options)


def options_written(bootloader: str, added: Sequence[str], removed: Sequence[str]) -> Event:
    did = "; ".join(part for part in (f"added {_words(added)}" if added else "",
                                      f"removed {_words(removed)}" if removed else "") if part)
    return Event(MessageId.OPTIONS_WRITTEN, Priority.NOTICE,
                 f"kernel command line of the next boot written through {bootloader}: {did}",
                 ((Field.BOOTLOADER, bootloader), (Field.OPTIONS_ADDED, _words(added)),
                  (Field.OPTIONS_REMOVED, _words(removed))))


def reboot_requested(reason: str) -> Event:
    return Event(MessageId.REBOOT_REQUESTED, Priority.NOTICE,
                 f"asking systemd to reboot: {reason}", ((Field.REASON, reason),))


def reboot_refused(reason: str) -> Event:
    return Event(MessageId.REBOOT_REFUSED, Priority.WARNING,
                 f"not rebooting: {reason}", ((Field.REASON, reason),))


def trial_armed(bootloader: str, options: Sequence[str]) -> Event:
    return Event(MessageId.TRIAL_ARMED, Priority.NOTICE,
                 f"trial boot armed through {bootloader}: the next boot tries "
                 f"{_words(options)}",
                 ((Field.BOOTLOADER, bootloader), (Field.OPTIONS, _words(options))))


def trial_committed(message: str, options: Sequence[str]) -> Event:
    return Event(MessageId.TRIAL_COMMITTED, Priority.NOTICE, f"Trial boot: {message}",
                 ((Field.OPTIONS, _words(options)),))


def trial_failed(message: str, reason: str, options: Sequence[str]) -> Event:
    return Event(MessageId.TRIAL_FAILED, Priority.WARNING, f"Trial boot: {message}",
                 ((Field.REASON, reason), (Field.OPTIONS, _words(options))))


def filesystem_made(message: str, *, region: str, device: str, fstype: str, uuid: str,
                    reason: str, alarming: bool) -> Event:
    """``alarming``: the content the user kept is gone (a warning, not a notice)."""
    return Event(MessageId.FILESYSTEM_MADE, Priority.WARNING if alarming else Priority.NOTICE,
                 message, ((Field.REGION, region), (Field.DEVICE, device),
                           (Field.FSTYPE, fstype), (Field.UUID, uuid), (Field.REASON, reason)))


def filesystem_kept(message: str, *, region: str, device: str, fstype: str, uuid: str,
                    reason: str) -> Event:
    return Event(MessageId.FILESYSTEM_KEPT, Priority.INFO, message,
                 ((Field.REGION, region), (Field.DEVICE, device), (Field.FSTYPE, fstype),
                  (Field.UUID, uuid), (Field.REASON, reason)))


def filesystem_refused(*, region: str, device: str, reason: str) -> Event:
    return Event(MessageId.FILESYSTEM_REFUSED, Priority.ERR,
                 f"region {region}: refused to make a filesystem on {device or 'its device'}: "
                 f"{reason}",
                 ((Field.REGION, region), (Field.DEVICE, device), (Field.REASON, reason)))


def dax_failed(*, region: str, mountpoint: str, device: str, reason: str) -> Event:
    return Event(MessageId.DAX_FAILED, Priority.ERR,
                 f"region {region}: {mountpoint} is not a DAX mount: {reason}",
                 ((Field.REGION, region), (Field.MOUNTPOINT, mountpoint),
                  (Field.DEVICE, device), (Field.REASON, reason)))


def namespace_configured(*, region: str, namespace: str, mode: str, before: str, after: str
                         ) -> Event:
    return Event(MessageId.NAMESPACE_CONFIGURED, Priority.NOTICE,
                 f"region {region}: {namespace} made {mode}: was {before}, now {after}",
                 ((Field.REGION, region), (Field.NAMESPACE, namespace), (Field.MODE, mode),
                  (Field.REASON, f"was {before}")))


def namespace_refused(*, region: str, namespace: str, mode: str, reason: str) -> Event:
    return Event(MessageId.NAMESPACE_REFUSED, Priority.ERR,
                 f"region {region}: refused to make {namespace or 'its namespace'} {mode}: "
                 f"{reason}",
                 ((Field.REGION, region), (Field.NAMESPACE, namespace), (Field.MODE, mode),
                  (Field.REASON, reason)))


def pmd_fallback(*, region: str, mountpoint: str, device: str, reason: str) -> Event:
    return Event(MessageId.PMD_FALLBACK, Priority.ERR,
                 f"region {region}: {mountpoint} is degraded: {reason}",
                 ((Field.REGION, region), (Field.MOUNTPOINT, mountpoint),
                  (Field.DEVICE, device), (Field.REASON, reason)))
