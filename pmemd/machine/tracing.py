"""A private tracefs instance: a trace buffer of pmemd's own, so the machine's global tracing
(what an admin's ``trace-cmd`` or ``perf`` set up) is never touched. The instance
(``<tracefs>/instances/pmemd-<pid>``) enables the events it is asked for, filtered on one
process, and is removed on leaving, whatever happened."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from pmemd.errors import CommandError
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner


class TracingUnavailable(Exception):
    """Why no instance can be made (no tracefs, not root, no such event)."""


@dataclass(frozen=True)
class TraceInstance:
    path: Path

    def read(self) -> str:
        return (self.path / "trace").read_text(errors="replace")


def find_tracefs(machine: Machine, runner: Runner) -> Path:
    """The mounted tracefs (mounted at its usual place when it is not)."""
    for _, path in machine.tracefs_dirs:
        if (path / "instances").is_dir():
            return path
    absolute, path = machine.tracefs_dirs[0]
    if not path.is_dir():
        raise TracingUnavailable(f"{absolute} does not exist (a kernel without tracefs)")
    try:
        runner.run(["mount", "-t", "tracefs", "tracefs", str(path)])
    except CommandError as err:
        raise TracingUnavailable(f"tracefs is not mounted and mounting it failed: {err}"
                                 ) from None
    if not (path / "instances").is_dir():
        raise TracingUnavailable(f"{absolute} has no instances directory")
    return path


def _write(path: Path, text: str) -> None:
    with path.open("w") as file:
        file.write(text)


@contextmanager
def trace_instance(machine: Machine, runner: Runner, events: Sequence[str], *,
                   pid: int | None = None) -> Iterator[TraceInstance]:
    """An instance tracing ``events`` (``system:event``), only of ``pid`` when given."""
    tracefs = find_tracefs(machine, runner)
    path = tracefs / "instances" / f"pmemd-{os.getpid()}"
    try:
        path.mkdir()
    except OSError as err:
        raise TracingUnavailable(f"cannot make a tracefs instance {path}: "
                                 f"{err.strerror}") from None
    try:
        for event in events:
            directory = path / "events" / event.replace(":", "/")
            if not directory.is_dir():
                raise TracingUnavailable(f"the kernel has no {event} tracepoint")
            if pid is not None:
                _write(directory / "filter", f"common_pid == {pid}")
            _write(directory / "enable", "1")
        yield TraceInstance(path)
    finally:
        for event in events:
            enable = path / "events" / event.replace(":", "/") / "enable"
            if enable.exists():
                with suppress(OSError):
                    _write(enable, "0")
        path.rmdir()  # tracefs removes the instance with its buffers and files
