"""What every backend shares: the next boot's command line as the bootloader's own files say
(:class:`NextBoot`), the files and commands that carry an edit out (:class:`BootWrite`), and
the interface each backend implements (:class:`Backend`).

Editing is done on the text of a command line (a BLS ``options`` line, a shell variable's
value, ``/etc/kernel/cmdline``) by :mod:`pmemd.core.cmdline`, so that everything pmemd does
not own keeps its bytes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pmemd.core.cmdline import Cmdline, CmdlineEdit
from pmemd.core.model import BootloaderChoice
from pmemd.errors import MachineError
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner


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
    own: bool = False  # pmemd's own file (its GRUB drop-in): no backup copies beside it


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

    # --- the trial boot (see pmemd.core.trial); a backend that has none says why ---

    def trial_support(self, runner: Runner) -> str | None:
        """None when this bootloader can boot an entry once, here; else why not."""
        del runner
        return f"pmemd has no one-time boot for {self.kind.value} yet"

    def plan_trial(self, current: NextBoot, owned: Sequence[str], trial: Sequence[str]
                   ) -> BootWrite:
        """What to write and run so the next boot, once, carries ``trial`` instead of
        ``owned`` (pmemd's options now), the default entry unchanged."""
        raise NotImplementedError(self.trial_support(Runner(dry_run=True)))

    def plan_end_trial(self, current: NextBoot, owned: Sequence[str],
                       edit: CmdlineEdit) -> BootWrite:
        """What to write and run so that no trial entry is left and nothing selects it, the
        default entry carrying ``owned`` (the options tried, on commit; the old ones, on
        failure or abort): ``edit`` turns what it carries now into that (empty unless
        committing)."""
        raise NotImplementedError(self.trial_support(Runner(dry_run=True)))

    def read_trial(self) -> Cmdline | None:
        """The trial entry's command line, if there is one."""
        return None


@dataclass(frozen=True)
class Probe:
    """Whether a backend fits this machine, and why (or why not)."""

    kind: BootloaderChoice
    backend: Backend | None
    reason: str


def on_target(machine: Machine, path: Path) -> str:
    """``path`` (under the machine's root) as the machine itself names it."""
    return "/" + str(path.relative_to(machine.root)).removeprefix(".")


def default_entry_file(machine: Machine, current: NextBoot) -> tuple[str, Cmdline]:
    """The default entry's file and command line, which a trial entry copies (BLS and
    loader entries: one file per entry)."""
    if current.cmdline is None:
        raise MachineError(f"no default entry to copy for the trial ({current.source})")
    text = machine.read_text(Path(current.source))
    if text is None:
        raise MachineError(f"{current.source}: no such file")
    return text, current.cmdline


def file_write(path: Path, new: str | None, old: str | None, *, own: bool = False
               ) -> tuple[FileWrite, ...]:
    """The write that turns ``old`` into ``new``; nothing when they are equal."""
    return () if new == old else (FileWrite(path, str(path), old, new, own),)


def tool_argv(machine: Machine, argv: Sequence[str]) -> tuple[str, ...]:
    """``argv`` run on the machine: directly on ``/``, through ``chroot`` under a root."""
    if machine.root == Path("/"):
        return tuple(argv)
    return ("chroot", str(machine.root), *argv)
