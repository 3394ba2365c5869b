"""What every backend shares: the next boot's command line, the edit pmemd makes to it, and
the files and commands that carry the edit out.

Editing is done on the text of a command line (a BLS ``options`` line, a shell variable's
value, ``/etc/kernel/cmdline``) so that everything pmemd does not own keeps its bytes.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pmemd.machine import Machine
from pmemd.model import BootloaderChoice, Cmdline

_SPACE = " \t\n\v\f\r"
_BLANK = " \t"
END_OF_KERNEL_ARGS = "--"  # what follows goes to init, not to the kernel
# What pmemd itself ever writes: canonical memmap=SIZE!START and nokaslr. Nothing a shell,
# GRUB script or the kernel would read differently (no quotes, backslashes, $ or spaces).
_WRITABLE = re.compile(r"[A-Za-z0-9_.,:=!-]+")


@dataclass(frozen=True)
class CmdlineEdit:
    """Arguments to put on the next boot's command line and pmemd's own to take off."""

    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for arg in self.add + self.remove:
            check_writable(arg)

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove


def check_writable(arg: str) -> str:
    if _WRITABLE.fullmatch(arg) is None:
        raise ValueError(f"pmemd refuses to write the kernel argument {arg!r}")
    return arg


@dataclass(frozen=True)
class NextBoot:
    """The command line the bootloader passes on the next boot: its default entry's."""

    cmdline: Cmdline | None  # None: unknown (config not generated yet, no entry)
    source: str  # the file (and entry) it was read from
    entry: str | None = None  # the default entry's title
    kernel: str | None = None  # the kernel that entry boots
    note: str = ""  # why the command line is unknown, or how the default was chosen

    def describe(self) -> str:
        text = self.source
        if self.entry is not None:
            text += f", entry {self.entry!r}"
        if self.note:
            text += f" ({self.note})"
        return text


@dataclass(frozen=True)
class FileWrite:
    """A file pmemd writes itself (``new``) or removes (``new is None``)."""

    path: Path  # under the machine's root
    shown: str  # how to name it to the user
    old: str | None
    new: str | None


@dataclass(frozen=True)
class BootWrite:
    """Everything a backend does to carry out an edit, in order: files, then commands."""

    files: tuple[FileWrite, ...] = ()
    commands: tuple[tuple[str, ...], ...] = ()  # argv as on the target system
    tool_files: tuple[Path, ...] = ()  # what the commands rewrite (restored on failure)
    keep: tuple[str, ...] = ()  # arguments the commands rewrite that must survive them

    @property
    def empty(self) -> bool:
        return not self.files and not self.commands


@dataclass(frozen=True)
class Backend(ABC):
    """One way of getting options onto the kernel command line of the next boot."""

    machine: Machine

    @property
    @abstractmethod
    def kind(self) -> BootloaderChoice: ...

    @abstractmethod
    def read_next_boot(self) -> NextBoot:
        """The default entry's command line, from the files the bootloader reads."""

    @abstractmethod
    def plan_write(self, current: NextBoot, edit: CmdlineEdit,
                   owned_after: Sequence[str]) -> BootWrite:
        """What to write and run so the next boot carries ``edit``; ``owned_after`` is
        every argument pmemd will own afterwards (for backends that keep their own file)."""

    @abstractmethod
    def inputs(self) -> tuple[Path, ...]:
        """Every file (or directory) whose change can change what this backend decides."""

    def show(self, absolute: str) -> str:
        return self.machine.display(absolute)


@dataclass(frozen=True)
class Probe:
    """Whether a backend fits this machine, and why (or why not)."""

    kind: BootloaderChoice
    backend: Backend | None
    reason: str


def on_target(machine: Machine, path: Path) -> str:
    """``path`` (under the machine's root) as the machine itself names it."""
    return "/" + str(path.relative_to(machine.root)).removeprefix(".")


def file_write(path: Path, new: str | None, old: str | None) -> tuple[FileWrite, ...]:
    """The write that turns ``old`` into ``new``; nothing when they are equal."""
    return () if new == old else (FileWrite(path, str(path), old, new),)


def tool_argv(machine: Machine, argv: Sequence[str]) -> tuple[str, ...]:
    """``argv`` run on the machine: directly on ``/``, through ``chroot`` under a root."""
    if machine.root == Path("/"):
        return tuple(argv)
    return ("chroot", str(machine.root), *argv)


# --- command-line text ----------------------------------------------------------------------


def arg_spans(text: str) -> list[tuple[int, int]]:
    """Where each argument lies, split as the kernel splits (``lib/cmdline.c``): white space
    outside double quotes ends an argument."""
    spans: list[tuple[int, int]] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _SPACE:
            pos += 1
        if pos >= end:
            return spans
        start, in_quote = pos, False
        while pos < end and (in_quote or text[pos] not in _SPACE):
            if text[pos] == '"':
                in_quote = not in_quote
            pos += 1
        spans.append((start, pos))


def _kernel_spans(text: str) -> list[tuple[int, int]]:
    """The spans before a ``--`` (arguments after it belong to init)."""
    spans = []
    for start, end in arg_spans(text):
        if text[start:end] == END_OF_KERNEL_ARGS:
            break
        spans.append((start, end))
    return spans


def args_of(text: str) -> tuple[str, ...]:
    return tuple(text[s:e] for s, e in _kernel_spans(text))


def edit_args_text(text: str, edit: CmdlineEdit) -> str:
    """``text`` with ``edit.remove`` taken out and missing ``edit.add`` appended (before a
    ``--``), every other byte kept."""
    out = text
    for start, end in reversed(_kernel_spans(text)):
        if out[start:end] not in edit.remove:
            continue
        cut_from = start
        while cut_from > 0 and out[cut_from - 1] in _BLANK:
            cut_from -= 1
        cut_to = end
        if cut_from == 0 or out[cut_from - 1] in "\n\r":
            cut_from = start  # first on its line: take the blanks after it instead
            while cut_to < len(out) and out[cut_to] in _BLANK:
                cut_to += 1
        out = out[:cut_from] + out[cut_to:]
    present = set(args_of(out))
    missing = [arg for arg in edit.add if arg not in present]
    if not missing:
        return out
    addition = " ".join(missing)
    spans = arg_spans(out)
    for start, end in spans:
        if out[start:end] == END_OF_KERNEL_ARGS:
            return out[:start] + addition + " " + out[start:]
    if not spans:
        lead = len(out) - len(out.lstrip(_BLANK))
        return out[:lead] + addition + out[lead:]
    last = spans[-1][1]
    return out[:last] + " " + addition + out[last:]


def carries(cmdline: Cmdline, arg: str) -> bool:
    return any(a.text == arg and not a.after_dashdash for a in cmdline.args)
