"""What pmemd-generator does at run time whichever way it computes its output: its command
line, its log (the kernel log: a generator runs before the journal), and writing its files.

The cache replay (:mod:`pmemd.fastpath.generator_cache`) and the full generator
(:mod:`pmemd.generator`) share it, so a replayed boot is indistinguishable from a computed
one. ``os`` and ``sys`` only.
"""

from __future__ import annotations

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


def write_outputs(directory: str, outputs: Sequence[Output], log: Log) -> bool:
    """Create every file exclusively (a duplicate is a bug that must show); True if all."""
    ok = True
    made: set[str] = set()
    for path, text, link in outputs:
        target = os.path.join(directory, path)
        try:
            parent = os.path.dirname(target)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            if link is not None:
                os.symlink(link, target)
                continue
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            log.error(f"{target}: already exists (a duplicate unit?), ignoring")
            ok = False
        except OSError as err:
            log.error(f"{target}: {err.strerror}, ignoring")
            ok = False
    return ok
