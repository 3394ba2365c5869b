"""Typed errors. The CLI turns them into exit codes; D-Bus into named errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pmemd.model import Config


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
            line = self.source_line.expandtabs(1).rstrip("\n")
            caret = " " * (self.location.column - 1) + "^"
            text += f"\n    {line}\n    {caret}"
        return text

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
    """Base of every error pmemd reports to a user."""

    dbus_name = "io.pmemd1.Error.Failed"


class ConfigError(PmemdError):
    """The config is invalid; carries every problem found, not only the first."""

    dbus_name = "io.pmemd1.Error.InvalidConfig"

    def __init__(self, problems: Sequence[Problem], partial: Config | None = None) -> None:
        self.problems = tuple(problems)
        # What is still usable: the config without the regions that have problems, when
        # every problem is about a region (None when any problem is about the whole file).
        self.partial = partial
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(problem.render() for problem in self.problems)


class MachineError(PmemdError):
    """The machine could not be read (missing or unreadable file, unparsable content)."""

    dbus_name = "io.pmemd1.Error.Machine"


class CommandError(PmemdError):
    """An external command failed; keeps argv, exit status and output."""

    dbus_name = "io.pmemd1.Error.CommandFailed"

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
