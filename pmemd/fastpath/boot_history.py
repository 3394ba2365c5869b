"""The boot history's file, at the level every boot can afford: ``os`` only.

``/var/lib/pmemd/boot-history`` says, for each of the last few boots, which physical ranges
were emulated pmem (so their memory was not used as RAM) and which filesystems pmemd made
or kept on them. ``on-boot: keep`` decides with it (see :mod:`pmemd.core.history` for the typed
reading and :mod:`pmemd.storage.makefs` for the decision). It is a text file of lines::

    pmemd-boot-history 1
    boot BOOT_ID RANGES
    fs BOOT_ID START+SIZE TYPE UUID REGION ACTION BASIS REASON

``RANGES`` is ``?`` (this boot's ranges could not be read), ``-`` (none) or a comma list of
``START+SIZE`` in hex; ``REASON`` is hex-encoded UTF-8. ``boot`` lines are in the order the
boots happened.

Every boot adds its own line once: ``pmemd make-filesystem`` and ``pmemd reconcile`` — also
its converged fast path (:mod:`pmemd.fastpath.converged`), which must stay cheap, hence this
module imports nothing but ``os`` and ``fcntl``, and writes the file atomically itself
(temporary file in the same directory, fsync, rename, fsync of the directory: what
:func:`pmemd.machine.atomic.write_atomic` does, without the imports that cost as much as the fast
path itself), under a lock (several processes record at the same time at boot).
"""

from __future__ import annotations

import fcntl
import os

from pmemd.fastpath import iomem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

MAGIC = "pmemd-boot-history 1"
KEPT_BOOTS = 8  # boots remembered; only the previous one decides, the rest is for people
UNKNOWN = "?"
NONE = "-"
Span = tuple[int, int]  # start, end (exclusive)


class HistoryFormatError(Exception):
    """The file is not a boot history this code can read; ``line`` is 1-based."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _read_or_none(path: str) -> str | None:
    """The file's text; ``None`` when it is missing or cannot be read."""
    try:
        return _read(path)
    except OSError:
        return None


def _iomem_ranges(path: str) -> list[Span] | None:
    """Top-level ``Persistent Memory (legacy)`` ranges; ``None`` when the addresses are
    hidden (not read as root) or the file cannot be read."""
    text = _read_or_none(path)
    try:
        resources = iomem.parse_iomem(text) if text is not None else None
    except iomem.IomemFormatError:
        return None
    return iomem.top_level(resources, iomem.LEGACY_PMEM) if resources is not None else None


def _nd_ranges(directory: str) -> list[Span] | None:
    """The ranges of the nvdimm regions (``regionN/resource`` and ``size``, as
    :mod:`pmemd.machine.sysfs` reads them); ``[]`` without the bus, ``None`` when unreadable."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError:
        return None
    found = []
    for name in names:
        if not (name.startswith("region") and name[len("region"):].isdigit()):
            continue
        try:
            resource = _read(os.path.join(directory, name, "resource"))
            size = _read(os.path.join(directory, name, "size"))
            if resource is None or size is None:
                continue
            start, length = int(resource.strip(), 16), int(size.strip(), 0)
        except (OSError, ValueError):
            return None
        if length > 0:
            found.append((start, start + length))
    return found


def read_pmem_ranges(iomem: str, nd_devices: str) -> list[Span] | None:
    """This boot's emulated pmem ranges: the kernel's memory map (iomem) together with the
    nvdimm regions in sysfs, merged where they touch; ``None`` when neither can be read
    (addresses are root-only)."""
    from_map = _iomem_ranges(iomem)
    from_bus = _nd_ranges(nd_devices)
    if from_map is None and (from_bus is None or not os.path.isdir(nd_devices)):
        return None
    return merge([*(from_map or ()), *(from_bus or ())])


def merge(spans: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def render_span(span: Span) -> str:
    return f"0x{span[0]:x}+0x{span[1] - span[0]:x}"


def parse_span(text: str, line: int) -> Span:
    first, plus, size = text.partition("+")
    try:
        start, length = int(first, 16), int(size, 16)
    except ValueError:
        raise HistoryFormatError(f"not a range: {text!r}", line) from None
    if not plus or length <= 0 or start < 0:
        raise HistoryFormatError(f"not a range: {text!r}", line)
    return start, start + length


def render_ranges(spans: Sequence[Span] | None) -> str:
    if spans is None:
        return UNKNOWN
    return ",".join(render_span(s) for s in spans) or NONE


def boot_line(boot_id: str, spans: Sequence[Span] | None) -> str:
    return f"boot {boot_id} {render_ranges(spans)}"


def body(text: str) -> list[str]:
    """The lines after the header; a :class:`HistoryFormatError` when it is not one."""
    lines = text.splitlines()
    if not lines or lines[0] != MAGIC:
        raise HistoryFormatError(f"does not start with {MAGIC!r}", 1)
    return lines[1:]


def boot_ids(lines: Sequence[str]) -> list[str]:
    return [line.split(" ")[1] for line in lines if line.startswith("boot ")
            and len(line.split(" ")) == 3]


def with_boot(lines: Sequence[str], boot_id: str, spans: Sequence[Span] | None) -> list[str]:
    """``lines`` with this boot's line added (unless it has one), the oldest boots (and
    their filesystems) dropped beyond :data:`KEPT_BOOTS`."""
    known = boot_ids(lines)
    if boot_id in known:
        return list(lines)
    keep = set((*known, boot_id)[-KEPT_BOOTS:])
    kept = [line for line in lines if len(line.split(" ")) > 1 and line.split(" ")[1] in keep]
    return [*kept, boot_line(boot_id, spans)]


def render(lines: Sequence[str]) -> str:
    return "\n".join((MAGIC, *lines)) + "\n"


def update(path: str, change: Callable[[list[str]], list[str]], *,
           replace_malformed: bool) -> bool:
    """Apply ``change`` to the history's lines and write the result if it differs, holding
    an exclusive lock on the directory meanwhile: the make-filesystem units of several
    regions, and reconcile, run at the same time at boot, and none may lose another's
    line. The file is replaced atomically (temporary file, fsync, rename, fsync of the
    directory). A file that is not a history raises :class:`HistoryFormatError`, or with
    ``replace_malformed`` is started anew. Says whether it wrote; ``OSError`` on failure."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(dfd, fcntl.LOCK_EX)
        text = _read(path)
        try:
            lines = body(text) if text is not None else []
        except HistoryFormatError:
            if not replace_malformed:
                raise
            lines = []
        new = render(change(lines))
        if new == text:
            return False
        _replace(path, new, dfd)
        return True
    finally:
        os.close(dfd)  # and with it the lock


def _replace(path: str, text: str, dfd: int) -> None:
    tmp = os.path.join(os.path.dirname(path) or ".",
                       f".{os.path.basename(path)}.pmemd-{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        try:
            os.write(fd, text.encode("utf-8", "surrogateescape"))
            os.fchmod(fd, 0o644)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    os.fsync(dfd)


def read_boot_id(path: str) -> str | None:
    text = _read_or_none(path)
    return text.strip() or None if text is not None else None


def record_boot(history: str, boot_id_file: str, iomem: str, nd_devices: str) -> bool:
    """Give this boot its line in ``history`` unless it has one (cheap when it has: two small
    reads, no lock). ``False`` when this cannot be done here — the file is not a history
    this code reads, or writing failed — so the caller takes the full path; ``True`` also
    when there is no boot id to record (a machine tree without one)."""
    boot_id = read_boot_id(boot_id_file)
    if boot_id is None:
        return True
    text = _read_or_none(history)
    if text is not None:
        try:
            if boot_id in boot_ids(body(text)):
                return True
        except HistoryFormatError:
            return False
    spans = read_pmem_ranges(iomem, nd_devices)
    try:
        update(history, lambda lines: with_boot(lines, boot_id, spans), replace_malformed=False)
    except (OSError, HistoryFormatError):
        return False
    return True
