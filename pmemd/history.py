"""The boot history, typed: what ``on-boot: keep`` knows about the previous boot.

Emulated pmem is DRAM. Whether a region's memory can hold what the user left there depends
on the previous boot: if the range was pmem then, the memory was not used as RAM and a warm
reboot kept it; if it was ordinary RAM (the region's first boot as pmem, or a boot without
pmemd's options), whatever it holds now is leftovers — even a valid-looking filesystem
signature. After a power cycle the memory is lost either way. The file format and the
per-boot line live in :mod:`pmemd.bootlog` (``os`` only, for the boot's fast path); this
module reads the file into :class:`~pmemd.model.BootHistory` and says, for one range, what
the previous boot was (:func:`prior_of`), and records what make-filesystem did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from pmemd import bootlog
from pmemd.errors import MachineError
from pmemd.machine import Machine
from pmemd.model import BootHistory, BootRecord, FsBasis, FsRecord, MemRange

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


def read_history(machine: Machine) -> BootHistory:
    """The history as the file says; a file that cannot be read or parsed is no history
    (``problem`` says why): ``keep`` then decides as when pmemd has never seen a boot."""
    current = bootlog.read_boot_id(str(machine.boot_id))
    path = machine.boot_history
    try:
        text = machine.read_text(path)
    except MachineError as err:
        return BootHistory(current, problem=str(err))
    if text is None:
        return BootHistory(current)
    try:
        return parse_history(text, current)
    except bootlog.HistoryFormatError as err:
        return BootHistory(current, problem=f"{path}:{err.line}: {err}")


def this_boot_ranges(machine: Machine) -> list[bootlog.Span] | None:
    return bootlog.read_pmem_ranges(str(machine.iomem), str(machine.sys_nd_devices))


def _update(machine: Machine, change: Callable[[list[str]], list[str]]) -> bool:
    """Change the file under its lock; a file that is not a history is started anew."""
    try:
        return bootlog.update(str(machine.boot_history), change, replace_malformed=True)
    except OSError as err:
        raise MachineError(f"cannot write {machine.boot_history}: {err.strerror}; the next "
                           "boot cannot tell whether this one kept its pmem (on-boot: "
                           "keep)") from None


def record_boot(machine: Machine) -> bool:
    """Give this boot its line (which ranges are pmem now) unless it has one; says whether
    it wrote. Raises :class:`MachineError` when the file cannot be written."""
    boot_id = bootlog.read_boot_id(str(machine.boot_id))
    if boot_id is None:
        return False
    spans = this_boot_ranges(machine)
    return _update(machine, lambda lines: bootlog.with_boot(lines, boot_id, spans))


def record_filesystem(machine: Machine, record: FsRecord) -> None:
    """Record (or replace) this boot's filesystem on ``record.range``."""
    spans = this_boot_ranges(machine)
    span = bootlog.render_span((record.range.start, record.range.end))

    def change(lines: list[str]) -> list[str]:
        lines = bootlog.with_boot(lines, record.boot_id, spans)
        kept = [line for line in lines if line.split(" ")[:3] != ["fs", record.boot_id, span]]
        return [*kept, render_fs_line(record)]

    _update(machine, change)


# --- what the previous boot says about one range (pure) ----------------------------------


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
