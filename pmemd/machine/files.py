"""The one reader of files pmemd is given rather than files the kernel makes (its config, a
file named on the command line): regular files only, and at most a limit.

A FIFO would make the reader wait for a writer forever (at boot, the generator), a device
such as ``/dev/zero`` never ends, a directory or a socket is no file: each is refused
before a byte is read, and nothing is opened that is not a regular file (opening some
devices, such as a watchdog, does something). Every failure is a typed error naming the
file (:class:`~pmemd.errors.UnreadableFile` and its kinds). ``os`` only: ``pmemctl`` uses
it too.
"""

from __future__ import annotations

import errno
import os
import stat

from pmemd.errors import FileMissing, FileTooLarge, NotRegularFile, UnreadableFile

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))
_CHUNK = 1 << 16


def read_regular(path: Path | str, limit: int) -> bytes:
    """The bytes of the regular file at ``path`` (symbolic links followed), at most
    ``limit`` of them; :class:`~pmemd.errors.UnreadableFile` (one of its kinds) otherwise."""
    shown = str(path)
    try:
        _check_regular(shown, os.stat(path).st_mode)  # noqa: PTH116 (os only)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as err:
        raise _unreadable(shown, err) from None
    try:
        info = os.fstat(fd)
        _check_regular(shown, info.st_mode)  # what was opened, if the path changed since
        if info.st_size > limit:
            raise _too_large(shown, limit, info.st_size)
        chunks, left = [], limit + 1  # one byte more tells a file that grew past the limit
        while left > 0:
            chunk = os.read(fd, min(left, _CHUNK))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as err:
        raise _unreadable(shown, err) from None
    finally:
        os.close(fd)
    if left <= 0:
        raise _too_large(shown, limit, None)
    return b"".join(chunks)


def _check_regular(path: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    what = next((name for test, name in _KINDS if test(mode)), "not a file")
    raise NotRegularFile(path, f"is {what}, not a regular file")


def _unreadable(path: str, err: OSError) -> UnreadableFile:
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        return FileMissing(path, os.strerror(err.errno))
    if err.errno == errno.ELOOP:
        return NotRegularFile(path, "is a loop of symbolic links")
    return UnreadableFile(path, err.strerror or str(err))


def _too_large(path: str, limit: int, size: int | None) -> FileTooLarge:
    found = f"{size} bytes" if size is not None else "more"
    return FileTooLarge(path, f"larger than {_amount(limit)}, the most pmemd reads: {found}",
                        limit)


def _amount(count: int) -> str:
    """``1 MiB (1048576 bytes)``: a limit, exactly."""
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if count >= 1 << shift and count % (1 << shift) == 0:
            return f"{count >> shift} {unit} ({count} bytes)"
    return f"{count} bytes"
