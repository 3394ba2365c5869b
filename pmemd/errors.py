"""What can go wrong, one exception per fact, for every room of pmemd.

An exception says *what* is wrong, not where it was noticed: a region that is not in the
config is :class:`NoSuchRegion` whether ``pmemd make-filesystem``, ``pmemd verify-dax`` or
a D-Bus method found out. Each is mapped once to an exit status (:mod:`pmemd.cli.exits`)
and once to a D-Bus error name (:mod:`pmemd.service.faults`). This module imports nothing
of pmemd's, so every room may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A place in a text file; line and column are 1-based."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where, which key, what, and the source line."""

    message: str
    key: str = ""
    location: Location | None = None
    source_line: str | None = None
    region: int | None = None  # index in the config's regions list, when it is about one

    def render(self) -> str:
        head = f"{self.location}: " if self.location else ""
        key = f"{self.key}: " if self.key else ""
        text = f"{head}{key}{self.message}"
        if self.location is not None and self.source_line is not None:
            line, column = source_excerpt(self.source_line.expandtabs(1).rstrip("\n"),
                                          self.location.column)
            caret = " " * (column - 1) + "^"
            text += f"\n    {line}\n    {caret}"
        return text

    def one_line(self) -> str:
        """:meth:`render` without the source line and caret (a log line)."""
        return Problem(self.message, self.key, self.location).render()

    def as_dict(self) -> dict[str, object]:
        loc = self.location
        return {
            "message": self.message,
            "key": self.key,
            "file": loc.path if loc else None,
            "line": loc.line if loc else None,
            "column": loc.column if loc else None,
        }


class PmemdError(Exception):
    """Base of every error pmemd reports to a user; its text is for that user."""

    # Where it was found, it was also sent to the journal as an event (pmemd.core.events):
    # a command whose standard error is the journal does not say it a second time.
    journaled: bool = False


# --- the config ---------------------------------------------------------------------------


class ConfigError(PmemdError):
    """The config is invalid; carries every problem found, not only the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.render())

    def render(self) -> str:
        return render_problems(self.problems)


class NoSuchRegion(PmemdError):
    """A region was named (by a unit, a command or a D-Bus path) that the config does not
    declare (any more)."""

    def __init__(self, name: str, known: Sequence[str], where: str) -> None:
        self.name = name
        listed = ", ".join(known) or "none"
        super().__init__(f"no region {name!r} in {where} (regions: {listed}); after editing "
                         "the config run 'systemctl daemon-reload'")


class NoFilesystem(PmemdError):
    """The region declares no filesystem: there is nothing to make, mount or check."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"region {name!r} has no filesystem in the config")


# --- the machine --------------------------------------------------------------------------


class MachineError(PmemdError):
    """The machine could not be read (a missing or unreadable file, unparsable content)."""


class NoDevice(PmemdError):
    """A region's device is not there on this boot (or is not the region's); says why."""


class NoBootloader(PmemdError):
    """No supported bootloader was found, or the configured one does not fit; says why
    every candidate does or does not match."""


class CommandError(PmemdError):
    """An external command failed; keeps argv, exit status and output."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str, hint: str = "") -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.output = output
        message = f"{' '.join(self.argv)} failed with exit status {returncode}"
        if hint:
            message += f": {hint}"
        if output.strip():
            message += "\n" + output.rstrip()
        super().__init__(message)


# --- the boot configuration ---------------------------------------------------------------


class BootConfigError(PmemdError):
    """The bootloader's configuration cannot be changed as asked: a form pmemd will not
    edit, a tool that failed, a result that lacks the options. pmemd has put the previous
    files back; the message says what happened."""


class RollbackError(BootConfigError):
    """A failed change could not be undone: names the files and where their backups are."""


class RebootError(PmemdError):
    """systemd refused or could not be asked to reboot."""


# --- storage ------------------------------------------------------------------------------


class Refused(PmemdError):
    """pmemd will not make this filesystem (the device is in use, not the region's, or
    holds data pmemd must not destroy); the message carries the evidence."""


class NotDax(PmemdError):
    """A region's filesystem is not mounted with DAX."""


class PmdFallback(NotDax):
    """A region's DAX mount serves mappings with 4 KiB faults, not 2 MiB ones."""


# --- services pmemd asks ------------------------------------------------------------------


class SystemdError(PmemdError):
    """systemd refused or failed a request (a unit's job failed, the bus is unreachable)."""


class NotLive(PmemdError):
    """The request needs the running system, and pmemd works on a tree (``--root``)."""


class Busy(PmemdError):
    """Another change is in progress (or the region is mounted); try again after it."""


class NotAuthorized(PmemdError):
    """The caller may not do this (polkit's answer, or only root without polkit)."""


class ApplyAfterSetConfigFailed(PmemdError):
    """SetConfig(apply=true) replaced the config, then applying it failed: the caller must
    know both; ``cause`` is the failure (its D-Bus name is the reply's)."""

    def __init__(self, message: str, cause: PmemdError) -> None:
        super().__init__(message)
        self.cause = cause


# --- showing problems (bounded, whatever the input) ---------------------------------------

SOURCE_WINDOW = 100  # characters of a long source line shown around a problem's column
PROBLEMS_SHOWN = 50  # problems rendered in full; the others are counted
QUOTED_MAX = 60  # characters of a value quoted whole in a message
# Control characters of a source line are shown as U+FFFD: one column each, so the caret
# stays in place, and an escape sequence in a config never reaches the terminal.
_SHOWN = {chr(code): "\ufffd" for code in (*range(32), *range(127, 160), 0x2028, 0x2029)}


def source_excerpt(line: str, column: int) -> tuple[str, int]:
    """What is shown of ``line`` under a problem at ``column`` (1-based), and the caret's
    column in it: the whole line when it is short, else :data:`SOURCE_WINDOW` characters
    around the column, with ``…`` where the line was cut."""
    line = "".join(_SHOWN.get(char, char) for char in line) if not line.isprintable() else line
    if len(line) <= SOURCE_WINDOW:
        return line, column
    start = min(max(column - 1 - SOURCE_WINDOW // 2, 0), max(len(line) - SOURCE_WINDOW, 0))
    end = start + SOURCE_WINDOW
    head = "…" if start > 0 else ""
    tail = "…" if end < len(line) else ""
    return f"{head}{line[start:end]}{tail}", column - start + len(head)


def render_problems(problems: Sequence[Problem], shown: int = PROBLEMS_SHOWN) -> str:
    """The first ``shown`` problems, rendered, then how many more there are."""
    text = "\n".join(problem.render() for problem in problems[:shown])
    if len(problems) > shown:
        text += f"\n... and {len(problems) - shown} more problems"
    return text


def quoted(text: str) -> str:
    """``repr(text)`` for a message; a long text is cut, and its length said."""
    if len(text) <= QUOTED_MAX:
        return repr(text)
    return f"{text[:QUOTED_MAX - 20]!r}… ({len(text)} characters)"


# --- files pmemd is given to read ---------------------------------------------------------


class UnreadableFile(MachineError):
    """A file pmemd was given (its config) cannot be read as one; ``reason`` says why
    without the path (``Permission denied``, ``is a FIFO, not a regular file``)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class FileMissing(UnreadableFile):
    """There is no file at the path (or a directory on the way is not one)."""


class NotRegularFile(UnreadableFile):
    """The path names a FIFO, a device, a directory, a socket or a loop of symbolic links:
    nothing pmemd reads, since reading it could wait forever or never end."""


class FileTooLarge(UnreadableFile):
    """The file is larger than pmemd reads; ``limit`` is that size in bytes."""

    def __init__(self, path: str, reason: str, limit: int) -> None:
        super().__init__(path, reason)
        self.limit = limit
