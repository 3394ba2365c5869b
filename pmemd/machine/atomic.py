"""Atomic file replacement with a backup that can be restored.

Files on the boot path (bootloader configs, pmemd's state, a config written over D-Bus)
are never edited in place: the new content goes to a temporary file in the same directory,
is fsynced, and renamed over the old one, so a crash leaves the old file or the new one,
never a mix. :class:`Transaction` keeps the previous content of every file it replaced so a
failing bootloader tool can be undone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as err:
        raise _naming(err, directory) from None
    finally:
        os.close(fd)


def _naming(err: OSError, path: Path) -> OSError:
    """``err`` with the file it is about (a failed write() or fsync() names none)."""
    if err.filename is None:
        err.filename = str(path)
    return err


@dataclass(frozen=True)
class Metadata:
    """What a replaced file keeps besides its content: mode, owner, and every extended
    attribute — the SELinux context (``security.selinux``), POSIX ACLs
    (``system.posix_acl_*``), IMA/EVM signatures, an admin's ``user.*`` notes."""

    mode: int
    uid: int
    gid: int
    xattrs: tuple[tuple[str, bytes], ...] = ()


def metadata_of(path: Path) -> Metadata | None:
    """``path``'s :class:`Metadata` (following symlinks), or None if there is no file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        info = os.fstat(fd)
        try:
            names = os.listxattr(fd)
        except OSError as err:
            if err.errno not in _NO_XATTRS:
                raise
            names = []
        xattrs = tuple((name, os.getxattr(fd, name)) for name in sorted(names))
    finally:
        os.close(fd)
    return Metadata(stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, xattrs)


_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP)


def _give(fd: int, meta: Metadata) -> None:
    """Give the new file ``meta``: owner first (a chown clears set-id bits), then mode,
    then the extended attributes (an ACL xattr also sets the group bits: it comes last)."""
    info = os.fstat(fd)
    if (info.st_uid, info.st_gid) != (meta.uid, meta.gid):
        os.fchown(fd, meta.uid, meta.gid)
    os.fchmod(fd, meta.mode)
    for name, value in meta.xattrs:
        os.setxattr(fd, name, value)


def _target(path: Path) -> Path:
    """Where to write: a symlink's target (the link stays a link, as ``sed -i
    --follow-symlinks`` and the bootloader tools do), else ``path`` itself."""
    return path.resolve() if path.is_symlink() else path


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None,
                 like: Metadata | None = None) -> None:
    """Replace ``path`` with ``data`` atomically. The new file keeps the old one's mode,
    owner and extended attributes (SELinux context included); ``like`` gives them
    explicitly (a restore), ``mode`` is the mode of a file that did not exist (0644)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path = _target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = like if like is not None else metadata_of(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.pmemd-{os.getpid()}-",
                                        suffix=".tmp", dir=path.parent)
    except OSError as err:  # named for the file to write, not the temporary it tried
        err.filename = str(path)
        raise
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            if meta is None:
                os.fchmod(handle.fileno(), 0o644 if mode is None else mode)
            else:
                _give(handle.fileno(), meta)
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _naming(err, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


# A temporary file of a pmemd process: ``.NAME.pmemd-PID-RANDOM.tmp`` (write_atomic) or
# ``.NAME.pmemd-PID.tmp`` (the boot history's writer on the boot path).
TEMPORARY = re.compile(r"\.(?P<name>.+)\.pmemd-(?P<pid>[0-9]+)(-[^./]+)?\.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temporaries(directories: Iterable[Path]) -> list[Path]:
    """Remove the temporary files pmemd processes that no longer run (killed between
    writing and renaming) left in ``directories``; a live writer's are left alone. They
    never shadow a real file (no tool reads dot files) but should not pile up."""
    removed = []
    for directory in sorted(set(directories)):
        try:
            entries = list(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            found = TEMPORARY.fullmatch(entry.name)
            if found is None or _alive(int(found["pid"])):
                continue
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed


def remove_durably(path: Path) -> None:
    """Remove ``path`` (if present) and make the removal durable."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    _fsync_dir(path.parent)


@dataclass(frozen=True)
class _Previous:
    content: bytes
    meta: Metadata


@dataclass
class Transaction:
    """Atomic writes that remember what they replaced, for :meth:`rollback`.

    Beside each file it replaces it leaves, for the admin, the version before this change
    (``grub.cfg.pmemd-bak``, as ``update-grub``'s users expect) and, once, the version
    before pmemd ever changed it (``grub.cfg.pmemd-orig``: never overwritten, so the
    admin's own file survives any number of changes). Both keep the file's mode, owner
    and extended attributes: a backup of a 0600 file is not readable by others.
    ``backup=False`` is for pmemd's own files (its state), which need no copies.
    """

    backup_suffix: str | None = ".pmemd-bak"
    original_suffix: str | None = ".pmemd-orig"
    _previous: dict[Path, _Previous | None] = field(default_factory=dict)

    def write(self, path: Path, data: bytes | str, *, mode: int | None = None,
              backup: bool = True) -> None:
        self._remember(path, backup=backup)
        write_atomic(path, data, mode=mode)

    def remove(self, path: Path, *, backup: bool = True) -> None:
        self._remember(path, backup=backup)
        remove_durably(path)

    def _remember(self, path: Path, *, backup: bool = True) -> None:
        path = _target(path)
        if path in self._previous:
            return
        meta = metadata_of(path)
        old = None if meta is None else _Previous(path.read_bytes(), meta)
        self._previous[path] = old
        if old is None or not backup:
            return
        if self.original_suffix:
            original = path.with_name(path.name + self.original_suffix)
            if not original.exists():
                write_atomic(original, old.content, like=old.meta)
        if self.backup_suffix:
            write_atomic(path.with_name(path.name + self.backup_suffix), old.content,
                         like=old.meta)

    @property
    def touched(self) -> tuple[Path, ...]:
        return tuple(self._previous)

    def rollback(self) -> None:
        """Put every touched file back as it was (content, mode, owner, xattrs; restoring
        or removing it)."""
        for path, old in reversed(list(self._previous.items())):
            self._put_back(path, old)
        self._previous.clear()

    def _put_back(self, path: Path, old: _Previous | None) -> None:
        """Restore one file. From its backup when that still holds the old file (the usual
        case): renamed into place, which writes no data — a full disk, the usual reason
        for a rollback, cannot stop it — then the backup is made again if there is room."""
        if old is None:
            remove_durably(path)
            return
        backup = path.with_name(path.name + self.backup_suffix) if self.backup_suffix \
            else None
        if backup is not None and metadata_of(backup) == old.meta \
                and backup.read_bytes() == old.content:
            backup.replace(path)
            _fsync_dir(path.parent)
            with contextlib.suppress(OSError):
                write_atomic(backup, old.content, like=old.meta)
            return
        write_atomic(path, old.content, like=old.meta)
