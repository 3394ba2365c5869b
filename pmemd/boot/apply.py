"""Carry out a backend's :class:`BootWrite`: write the files atomically, run the tool, read
the bootloader's config back and check the default entry; on any failure put every file
back as it was and report why (with the tool's output)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pmemd.boot.backends.base import Backend, BootWrite, NextBoot, tool_argv
from pmemd.core.cmdline import CmdlineEdit, carries
from pmemd.core.events import options_written
from pmemd.errors import BootConfigError, CommandError, MachineError, RollbackError
from pmemd.machine.atomic import (
    Transaction,
    metadata_of,
    sweep_temporaries,
)
from pmemd.machine.journal import send_event
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner


class BootTransaction(Transaction):
    """A :class:`Transaction` that can also remember files a *tool* will rewrite, and that
    on rollback restores only what really changed (a file the tool left alone, perhaps
    because it could not write it, is not touched again)."""

    def keep(self, path: Path) -> None:
        """Remember ``path`` for :meth:`rollback` without writing it."""
        self._remember(path)

    def rollback(self) -> None:
        failed = []
        for path, old in reversed(list(self._previous.items())):
            try:
                current = metadata_of(path)
                if current is None and old is None:
                    continue
                if (current is not None and old is not None and current == old.meta
                        and path.read_bytes() == old.content):
                    continue
                self._put_back(path, old)
            except OSError as err:
                backup = f" (its previous content is in {path}{self.backup_suffix})" if (
                    old is not None and self.backup_suffix) else ""
                failed.append(f"{path}: {err.strerror}{backup}")
        self._previous.clear()
        if failed:
            raise RollbackError("could not restore: " + "; ".join(failed))


def sweep_leftovers(machine: Machine, backend: Backend | None, config: Path | None = None
                    ) -> None:
    """Before a change: the temporary files a killed pmemd left beside the bootloader's
    files, the config (``config``, default /etc/pmemd.yaml: SetConfig replaces it), its
    state, the generator's cache and its marks in /run (the caller holds the change
    lock)."""
    inputs = backend.inputs() if backend is not None else ()
    sweep_temporaries([*(p.parent for p in inputs), (config or machine.config).parent,
                       machine.state_file.parent,
                       machine.generator_cache.parent, machine.runtime_dir,
                       machine.reboot_required.parent, machine.converged_stamp.parent])


def verify_next_boot(after: NextBoot, edit: CmdlineEdit, keep: Sequence[str] = ()) -> None:
    """The default entry must carry every added (and kept) argument and none removed."""
    if after.cmdline is None:
        raise BootConfigError(f"after writing, {after.describe()}: no default entry with a "
                              "kernel command line was found")
    missing = [a for a in (*edit.add, *keep) if not carries(after.cmdline, a)]
    left = [a for a in edit.remove if carries(after.cmdline, a)]
    problems = []
    if missing:
        problems.append(f"lacks {' '.join(missing)}")
    if left:
        problems.append(f"still carries {' '.join(left)}: another part of the bootloader "
                        "configuration adds it; remove it there")
    if problems:
        raise BootConfigError(f"after writing, the default entry ({after.describe()}) "
                              + "; ".join(problems))


def apply_boot_write(backend: Backend, write: BootWrite, edit: CmdlineEdit, runner: Runner,
                     *, keep: Sequence[str] = (),
                     before: Callable[[Transaction], object] | None = None,
                     check: Callable[[NextBoot], None] | None = None) -> NextBoot:
    """Write, run, read back and check; roll everything back on failure.

    ``before`` writes into the same transaction first (pmemd records in its state what it
    is about to own before the bootloader carries it, so a crash never loses ownership).
    ``check`` replaces the check of the default entry against ``edit`` (a trial leaves the
    default entry as it was and checks its own entry instead); it raises BootConfigError.
    Options added or removed are an event in the journal once they are written.
    """
    sweep_temporaries(p.parent for p in (*(c.path for c in write.files), *write.tool_files))
    transaction = BootTransaction()
    try:
        if before is not None:
            before(transaction)
        for change in write.files:
            if change.new is None:
                transaction.remove(change.path, backup=not change.own)
            else:
                transaction.write(change.path, change.new, backup=not change.own)
        for path in write.tool_files:
            transaction.keep(path)
        for argv in write.commands:
            runner.run(tool_argv(backend.machine, argv))
        after = backend.read_next_boot()
        if check is None:
            verify_next_boot(after, edit, (*keep, *write.keep))
        else:
            check(after)
    except (CommandError, MachineError, BootConfigError, OSError) as err:
        _undo(transaction, err)
        raise BootConfigError(f"{_describe(err)}\npmemd put the previous bootloader files "
                              "back; nothing changed") from err
    except BaseException as err:
        # Interrupted (SIGTERM from systemctl stop or a shutdown, Ctrl-C) or an error no
        # one expected: the files go back all the same, then it goes on.
        _undo(transaction, err)
        raise
    if edit.add or edit.remove:
        send_event(backend.machine, options_written(backend.kind.value, edit.add, edit.remove))
    return after


def _undo(transaction: BootTransaction, err: BaseException) -> None:
    try:
        transaction.rollback()
    except RollbackError as rollback:
        raise RollbackError(f"{_describe(err)}\nand then {rollback}") from err


def _describe(err: BaseException) -> str:
    if isinstance(err, (SystemExit, KeyboardInterrupt)):
        return "interrupted (SIGTERM or Ctrl-C)"
    if isinstance(err, OSError):
        return f"{err.filename or 'writing'}: {err.strerror}"
    return str(err)
