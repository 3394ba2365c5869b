"""(pure) The boot history, typed: what ``on-boot: keep`` knows about the previous boot.

Emulated pmem is DRAM. Whether a region's memory can hold what the user left there depends
on the previous boot: if the range was pmem then, the memory was not used as RAM and a warm
reboot kept it; if it was ordinary RAM (the region's first boot as pmem, or a boot without
pmemd's options), whatever it holds now is leftovers — even a valid-looking filesystem
signature. After a power cycle the memory is lost either way. The file format and the
per-boot line live in :mod:`pmemd.fastpath.boot_history` (``os`` only, for the boot's fast
path); this module reads its text into :class:`BootHistory`, renders make-filesystem's
records, and says, for one range, what the previous boot was (:func:`prior_of`). Reading
and writing the file is :mod:`pmemd.machine.history`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pmemd.core.ranges import MemRange
from pmemd.fastpath import boot_history as bootlog


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


ACTIONS = ("made", "kept")


def _ranges(text: str, line: int) -> tuple[MemRange, ...] | None:
    if text == bootlog.UNKNOWN:
        return None
    if text == bootlog.NONE:
        return ()
    return tuple(MemRange(*bootlog.parse_span(part, line)) for part in text.split(","))


def parse_history(text: str, current: str | None) -> BootHistory:
    """(pure) The file's text; a :class:`bootlog.HistoryFormatError` when malformed."""
    boots: list[BootRecord] = []
    filesystems: list[FsRecord] = []
    for number, line in enumerate(bootlog.body(text), 2):
        fields = line.split(" ")
        if fields[0] == "boot" and len(fields) == 3:
            boots.append(BootRecord(fields[1], _ranges(fields[2], number)))
        elif fields[0] == "fs" and len(fields) == 9:
            _, boot_id, span, fstype, uuid, region, action, basis, reason = fields
            try:
                why = FsBasis(basis)
                said = bytes.fromhex(reason).decode("utf-8", "surrogateescape")
            except ValueError:
                raise bootlog.HistoryFormatError(f"not a filesystem record: {line!r}",
                                                 number) from None
            if action not in ACTIONS:
                raise bootlog.HistoryFormatError(f"unknown action {action!r}", number)
            filesystems.append(FsRecord(boot_id, MemRange(*bootlog.parse_span(span, number)),
                                        fstype, "" if uuid == bootlog.NONE else uuid, region,
                                        action, why, said))
        else:
            raise bootlog.HistoryFormatError(f"not a history line: {line!r}", number)
    return BootHistory(current, tuple(boots), tuple(filesystems))


def render_fs_line(record: FsRecord) -> str:
    return " ".join(("fs", record.boot_id, bootlog.render_span((record.range.start,
                                                                 record.range.end)),
                     record.fstype, record.uuid or bootlog.NONE, record.region, record.action,
                     record.basis.value,
                     record.reason.encode("utf-8", "surrogateescape").hex()))


class PriorKind(StrEnum):
    NONE = "none"  # no earlier boot recorded (or the file was unusable)
    UNKNOWN = "unknown"  # the previous boot could not read its pmem ranges
    RAM = "ram"  # the range (or part of it) was ordinary RAM on the previous boot
    PMEM = "pmem"  # the whole range was pmem on the previous boot


@dataclass(frozen=True)
class Prior:
    """The previous boot, as far as one range is concerned."""

    kind: PriorKind
    boot_id: str | None = None
    own: FsRecord | None = None  # pmemd's filesystem on exactly this range, that boot
    problem: str | None = None  # why the history was unusable

    @property
    def boot(self) -> str:
        """How to name the previous boot to a user (journalctl's form of its id)."""
        if self.boot_id is None:
            return "the previous boot"
        return f"the previous boot (journalctl -b {self.boot_id.replace('-', '')})"

    def describe(self) -> str:
        """Why pmemd cannot say whether the memory kept its content (NONE / UNKNOWN)."""
        if self.kind is PriorKind.UNKNOWN:
            return f"pmemd could not read which ranges were pmem on {self.boot}"
        if self.problem:
            return f"pmemd's boot history is unusable ({self.problem})"
        return "pmemd's boot history has no earlier boot to tell whether this memory was pmem"


def prior_of(history: BootHistory, rng: MemRange) -> Prior:
    previous = history.previous
    if previous is None:
        return Prior(PriorKind.NONE, problem=history.problem)
    if previous.pmem is None:
        return Prior(PriorKind.UNKNOWN, previous.boot_id)
    if not previous.covers(rng):
        return Prior(PriorKind.RAM, previous.boot_id)
    return Prior(PriorKind.PMEM, previous.boot_id, history.filesystem(previous.boot_id, rng))
