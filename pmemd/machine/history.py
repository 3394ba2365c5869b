"""The boot history on the machine: read ``/var/lib/pmemd/boot-history`` into
:class:`~pmemd.core.history.BootHistory`, record this boot's line and the filesystems
make-filesystem made or kept (:mod:`pmemd.fastpath.boot_history` owns the file's format
and its locked, atomic update)."""

from __future__ import annotations

from collections.abc import Callable

from pmemd.core.history import BootHistory, FsRecord, parse_history, render_fs_line
from pmemd.errors import MachineError
from pmemd.fastpath import boot_history as bootlog
from pmemd.machine.root import Machine


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
