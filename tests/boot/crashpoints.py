"""Crash points and I/O faults, swept: a real ``pmemd`` run under ``strace``, killed with
SIGKILL (or failed with ENOSPC, EIO) at the Nth call of one system call, for every N from
1 until a run no longer reaches an Nth call — not sampled.

``strace -f -e inject=SYSCALL:signal=SIGKILL:when=N`` counts each process's
calls of each system call on its own: with ``follow`` the tools pmemd runs (grubby,
grub2-mkconfig) are killed at *their* Nth call as well, and pmemd then sees its tool die
(and may itself be killed later in its rollback). Without ``follow`` only pmemd is hit.

After each fault the caller's checks say whether the boot configuration is exactly the
old one or exactly the new one and whether anything was lost; a :class:`Sweep` collects
every failing point (all of them, not just the first) for one assertion at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO

MAX_POINTS = 400  # a run with more calls of one kind than this is a runaway: fail


@dataclass(frozen=True)
class Fault:
    """One kind of fault: what strace does at the Nth call of ``syscall``."""

    syscall: str  # rename, write, fsync, unlink, pwrite64 ...
    action: str  # "signal=SIGKILL", "error=ENOSPC", "error=EIO"
    follow: bool = True  # the tools pmemd runs too (strace -f)

    @property
    def killing(self) -> bool:
        return self.action.startswith("signal=")

    def __str__(self) -> str:
        return f"{self.syscall}:{self.action}{'' if self.follow else ' (pmemd only)'}"


@dataclass(frozen=True)
class Injected:
    """A run with a fault at the Nth call: pmemd's exit status and output, and how many
    processes strace hit (0: the run never made an Nth call — the sweep is over)."""

    point: int
    returncode: int
    stdout: str
    stderr: str
    hits: int


def run_injected(fault: Fault, point: int, argv: Sequence[str], log: Path) -> Injected:
    # Not --seccomp-bpf: strace 6.1 then ignores signal= injections (the process lives on).
    follow = ["-f"] if fault.follow else []
    done = subprocess.run(
        ["strace", "-qq", *follow, "-o", str(log), "-e", f"trace={fault.syscall}",
         "-e", f"inject={fault.syscall}:{fault.action}:when={point}",
         sys.executable, "-m", "pmemd", *argv],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=300)
    # An injected error is marked as such; an injected SIGKILL shows as the kill it is.
    trace = log.read_text(errors="replace")
    hits = trace.count("+++ killed by SIGKILL +++" if fault.killing else "(INJECTED)")
    return Injected(point, done.returncode, done.stdout, done.stderr, hits)


class Pristine:
    """Copies of the parts of a root that a run may change (files or directories), put
    back before every point: what a run added goes, what it changed comes back (content,
    mode, owner, xattrs), what it removed returns; the rest is not touched."""

    def __init__(self, root: Path, parts: Sequence[str], keep: Path) -> None:
        self.root, self.parts, self.keep = root, tuple(parts), keep
        for part in self.parts:
            source = root / part
            if source.is_dir():
                shutil.copytree(source, keep / part, symlinks=True)
            elif source.exists():
                (keep / part).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, keep / part)

    def restore(self) -> None:
        for part in self.parts:
            _put_back(self.keep / part, self.root / part)


def _put_back(saved: Path, target: Path) -> None:
    if not saved.exists() and not saved.is_symlink():
        _remove(target)
        return
    if saved.is_dir() and not saved.is_symlink():
        if not target.is_dir() or target.is_symlink():
            _remove(target)
            target.mkdir()
        names = {p.name for p in saved.iterdir()} | {p.name for p in target.iterdir()}
        for name in sorted(names):
            _put_back(saved / name, target / name)
        shutil.copystat(saved, target)
        return
    if _same(saved, target):
        return
    _remove(target)
    shutil.copy2(saved, target, follow_symlinks=False)
    if not saved.is_symlink():
        info = saved.stat()
        os.chown(target, info.st_uid, info.st_gid)


def _same(saved: Path, target: Path) -> bool:
    if saved.is_symlink() or target.is_symlink():
        return (saved.is_symlink() and target.is_symlink()
                and os.readlink(saved) == os.readlink(target))
    if not target.is_file():
        return False
    a, b = saved.stat(), target.stat()
    return ((a.st_mode, a.st_uid, a.st_gid, a.st_size) == (b.st_mode, b.st_uid, b.st_gid,
                                                           b.st_size)
            and saved.read_bytes() == target.read_bytes())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@dataclass
class Sweep:
    """What one sweep did: the points tried and every point whose checks failed."""

    fault: Fault
    points: int = 0
    hits: int = 0
    failures: list[str] = field(default_factory=list)

    def check(self, point: int, problem: str | None) -> None:
        if problem is not None:
            self.failures.append(f"{self.fault} at call {point}: {problem}")


def sweep(fault: Fault, argv: Sequence[str], pristine: Pristine, work: Path,
          mounted: Callable[[], AbstractContextManager[object]],
          after: Callable[[Injected], str | None]) -> Sweep:
    """Inject ``fault`` at call 1, 2, 3 ... of a ``pmemd ARGV`` run on the pristine root
    until a run makes no such call; ``after`` checks each faulted run (inside
    ``mounted()``, the context the root's tools need) and returns a problem or None."""
    result = Sweep(fault)
    for point in _points():
        pristine.restore()
        with mounted():
            injected = run_injected(fault, point, argv, work / "strace.log")
            if injected.hits == 0:
                return result
            result.points += 1
            result.hits += injected.hits
            result.check(point, after(injected))
    raise AssertionError(f"{fault}: more than {MAX_POINTS} calls, a runaway")


def _points() -> Iterator[int]:
    yield from range(1, MAX_POINTS + 1)
