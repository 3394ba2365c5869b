"""Atomic file replacement with a backup that can be restored.

Files on the boot path (bootloader configs, pmemd's state, a config written over D-Bus)
are never edited in place: the new content goes to a temporary file in the same directory,
is fsynced, and renamed over the old one, so a crash leaves the old file or the new one,
never a mix. :class:`Transaction` keeps the previous content of every file it replaced so a
failing bootloader tool can be undone.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically; keeps the old file's mode unless given."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def remove_durably(path: Path) -> None:
    """Remove ``path`` (if present) and make the removal durable."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _fsync_dir(path.parent)


@dataclass
class Transaction:
    """Atomic writes that remember what they replaced, for :meth:`rollback`.

    ``backup_suffix`` also leaves a copy of each replaced file beside it (e.g.
    ``grub.cfg.pmemd-bak``) for the admin, like ``update-grub``'s users expect.
    """

    backup_suffix: str | None = ".pmemd-bak"
    _previous: dict[Path, bytes | None] = field(default_factory=dict)

    def write(self, path: Path, data: bytes | str, *, mode: int | None = None) -> None:
        self._remember(path)
        write_atomic(path, data, mode=mode)

    def remove(self, path: Path) -> None:
        self._remember(path)
        remove_durably(path)

    def _remember(self, path: Path) -> None:
        if path in self._previous:
            return
        try:
            old: bytes | None = path.read_bytes()
        except FileNotFoundError:
            old = None
        self._previous[path] = old
        if old is not None and self.backup_suffix:
            write_atomic(path.with_name(path.name + self.backup_suffix), old)

    @property
    def touched(self) -> tuple[Path, ...]:
        return tuple(self._previous)

    def rollback(self) -> None:
        """Put every touched file back as it was (restoring or removing it)."""
        for path, old in reversed(list(self._previous.items())):
            if old is None:
                remove_durably(path)
            else:
                write_atomic(path, old)
        self._previous.clear()
