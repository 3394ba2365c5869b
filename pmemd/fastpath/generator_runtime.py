"""What pmemd-generator does at run time whichever way it computes its output: its command
line, its log (the kernel log: a generator runs before the journal), and writing its files.

The cache replay (:mod:`pmemd.fastpath.generator_cache`) and the full generator
(:mod:`pmemd.generator`) share it, so a replayed boot is indistinguishable from a computed
one. ``os``, ``sys`` and ``errno`` only.
"""

from __future__ import annotations

import errno
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

GENERATOR = "pmemd-generator"
USAGE = f"usage: {GENERATOR} [--root DIR] NORMAL_DIR [EARLY_DIR LATE_DIR]\n"
CONFIG_READ_LIMIT = 2 << 20  # enough to tell "too large" without reading it all
_KMSG_LINE_MAX = 900  # the kernel cuts a /dev/kmsg record at about 1 KiB
Output = tuple[str, str, str | None]  # path under the output directory, text, link target


class Log:
    """Messages to the kernel log (a generator runs before the journal, its stderr goes to
    /dev/null) or, under ``--root`` or on a terminal, to stderr; every message is also kept
    in ``records`` (what the cache replays)."""

    def __init__(self, kmsg_fd: int | None = None, *, echo: bool = True) -> None:
        self.kmsg_fd = kmsg_fd
        self.echo = echo
        self.records: list[tuple[int, str]] = []

    @property
    def count(self) -> int:
        return len(self.records)

    def warning(self, message: str) -> None:
        self.write(4, message)

    def error(self, message: str) -> None:
        self.write(3, message)

    def write(self, level: int, message: str) -> None:
        self.records.append((level, message))
        if not self.echo:
            return
        if self.kmsg_fd is not None:
            record = f"<{level}>{GENERATOR}[{os.getpid()}]: {message}"[:_KMSG_LINE_MAX]
            try:
                os.write(self.kmsg_fd, record.encode("utf-8", "replace") + b"\n")
                return
            except OSError:
                pass
        sys.stderr.write(f"{GENERATOR}: {message}\n")


def open_log(root: str, kmsg: str) -> Log:
    """The kernel log ``kmsg`` on the real root, else (or on a terminal) stderr."""
    if root != "/" or sys.stderr.isatty():
        return Log()
    try:
        return Log(os.open(kmsg, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC))
    except OSError:
        return Log()


def parse_arguments(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(root, output directories)`` of ``[--root DIR] NORMAL [EARLY LATE]``, else None."""
    root, positional = "/", []
    items = iter(argv)
    for arg in items:
        if arg == "--root":
            root = next(items, "")
            if not root:
                return None
        elif arg.startswith("--root="):
            root = arg.removeprefix("--root=")
        elif arg.startswith("-"):
            return None
        else:
            positional.append(arg)
    if len(positional) not in (1, 3):
        return None
    return root, positional


def write_outputs(directory: str, outputs: Sequence[Output], log: Log) -> int:
    """Create every file below ``directory`` exclusively (a duplicate is a bug that must
    show, and someone else's file is never replaced), following no symbolic link on the
    way: a generator writes nowhere but below its output directory. What cannot be written
    is logged ("…, ignoring") and left out; the rest is written. Returns how many were
    left out (a generator's exit status is 0 all the same)."""
    if not outputs:
        return 0
    try:
        top = _open_top(directory)
    except OSError as err:
        log.error(f"{directory}: {_reason(err)}, ignoring all {len(outputs)} files")
        return len(outputs)
    opened = {"": top}
    left = 0
    try:
        for path, text, link in outputs:
            try:
                _write_one(opened, path, text, link)
            except FileExistsError:
                log.error(f"{directory}/{path}: already exists (a duplicate unit?), ignoring")
                left += 1
            except (OSError, ValueError) as err:
                log.error(f"{directory}/{path}: {_reason(err)}, ignoring")
                left += 1
    finally:
        for fd in opened.values():
            os.close(fd)
    return left


_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_top(directory: str) -> int:
    """The output directory (systemd makes it; under ``--root`` it may be missing)."""
    try:
        return os.open(directory, _DIRECTORY)
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)
        return os.open(directory, _DIRECTORY)


def _write_one(opened: dict[str, int], path: str, text: str, link: str | None) -> None:
    parent, name = _parent(opened, path)
    if link is not None:
        os.symlink(link, name, dir_fd=parent)
        return
    fd = os.open(name, _NEW_FILE, 0o644, dir_fd=parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _parent(opened: dict[str, int], path: str) -> tuple[int, str]:
    """The directory that holds ``path`` (relative to the output directory), made when
    missing and opened without following a symbolic link; and the name in it."""
    *parts, name = path.split("/")
    if any(part in ("", ".", "..") for part in (*parts, name)):
        raise ValueError("not a path below the output directory")
    key = ""
    for part in parts:
        inner = f"{key}/{part}" if key else part
        if inner not in opened:
            try:  # noqa: SIM105 (contextlib is one more import on the boot's path)
                os.mkdir(part, 0o755, dir_fd=opened[key])
            except FileExistsError:
                pass
            opened[inner] = os.open(part, _DIRECTORY | os.O_NOFOLLOW, dir_fd=opened[key])
        key = inner
    return opened[key], name


def _reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.errno == errno.ELOOP:
        return "a symbolic link on the way, not followed"
    if isinstance(err, OSError):
        return err.strerror or str(err)
    return str(err)
