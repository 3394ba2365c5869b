"""The one place that runs external commands: argv lists only, logged, typed failures."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from pmemd.errors import CommandError

log = logging.getLogger(__name__)


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
        """Run ``argv``; ``mutating=False`` commands (queries) run even in dry-run mode."""
        args = self._record(argv)
        if self.dry_run and mutating:
            return Result(args, 0, "", "")
        try:
            with _started(args):
                done = subprocess.run(args, input=input, capture_output=True, text=True,
                                      env=self._env(), timeout=timeout, check=False)
        except subprocess.TimeoutExpired as err:
            output = (err.stdout or "") if isinstance(err.stdout, str) else ""
            raise CommandError(args, -1, output, f"timed out after {timeout} s") from None
        result = Result(args, done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise CommandError(args, done.returncode, result.output)
        return result


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
