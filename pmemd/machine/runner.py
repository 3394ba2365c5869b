"""The one place that runs external commands: argv lists only, logged, typed failures."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from pmemd.errors import CommandError

log = logging.getLogger(__name__)

KILL_GRACE = 5.0  # seconds to reap a killed command and read what it left in its pipes


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


@dataclass
class Runner:
    """Runs commands; ``dry_run`` records what would run instead of running it."""

    dry_run: bool = False
    env: Mapping[str, str] | None = None
    recorded: list[tuple[str, ...]] = field(default_factory=list)

    def spawn(self, argv: Sequence[str], *, pass_fds: Sequence[int] = ()
              ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the background (its standard streams are this process's), e.g.
        a helper that lives as long as a call; the caller stops it."""
        args = self._record(argv, " &")
        with _started(args):
            return subprocess.Popen(args, env=self._env(), pass_fds=tuple(pass_fds))

    def _record(self, argv: Sequence[str], suffix: str = "") -> tuple[str, ...]:
        """``argv`` checked, recorded and logged."""
        args = tuple(argv)
        if not args or any(not isinstance(a, str) for a in args):
            raise TypeError(f"argv must be a non-empty list of strings: {argv!r}")
        self.recorded.append(args)
        log.debug("+ %s%s", " ".join(args), suffix)
        return args

    def _env(self) -> dict[str, str] | None:
        return None if self.env is None else {**os.environ, **self.env}

    def run(self, argv: Sequence[str], *, check: bool = True, input: str | None = None,
            timeout: float | None = 600, mutating: bool = True) -> Result:
        """Run ``argv``; ``mutating=False`` commands (queries) run even in dry-run mode.

        The command runs in a process group of its own, and whatever ends the wait — its
        timeout, or this process being interrupted — kills the whole group before anything
        else happens: a tool's children (``grub-mkconfig`` under ``update-grub``) must not
        move files into place after pmemd has put the old ones back."""
        args = self._record(argv)
        if self.dry_run and mutating:
            return Result(args, 0, "", "")
        with _started(args):
            process = subprocess.Popen(
                args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self._env(),
                start_new_session=True)
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            output = _kill_group(process)
            raise CommandError(args, -1, output, f"timed out after {timeout} s") from None
        except BaseException:
            _kill_group(process)
            raise
        result = Result(args, process.returncode, stdout, stderr)
        if check and process.returncode != 0:
            raise CommandError(args, process.returncode, result.output)
        return result


def _kill_group(process: subprocess.Popen[str]) -> str:
    """SIGKILL the command's whole process group, reap it, and say what it had printed."""
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(process.pid, signal.SIGKILL)
    try:
        stdout, stderr = process.communicate(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:  # a descendant escaped the group and holds a pipe
        process.kill()
        process.wait()
        return ""
    return ((stdout or "") + (stderr or "")).strip()


@contextmanager
def _started(args: tuple[str, ...]) -> Iterator[None]:
    """A program that cannot be started is a :class:`CommandError` (127, 126 as a shell)."""
    try:
        yield
    except FileNotFoundError:
        raise CommandError(args, 127, "", f"{args[0]} is not installed (not found in PATH)"
                           ) from None
    except PermissionError:
        raise CommandError(args, 126, "", f"{args[0]} is not executable") from None
