"""The whole pytest suite as ``make test`` runs it: the guests' tests (marker ``vm``: qemu
under TCG) and all the others in two pytest processes at the same time.

A guest spends much of its time waiting (for a boot, a device, a timeout it is made to
wait out) and the other tests wait on their subprocesses: one process alone kept this
2-core machine about half busy. Each process has its own base temporary directory; the
guests' lines are printed as they come with ``[vm]`` before them, the others' as they are.
The exit status is the first failing process's (0 when both pass, or when options leave one
of them nothing to run); the wall time of each part is printed at the end.

    .venv/bin/python -m tests.suite [PYTEST OPTIONS]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parents[1]
NOTHING_COLLECTED = 5  # pytest's exit status when no test was selected


@dataclass
class Part:
    """One pytest process: its marker expression and how its lines are shown."""

    name: str
    marker: str
    prefix: str
    status: int | None = None
    seconds: float = 0.0
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)

    def start(self, options: Sequence[str], out: TextIO, lock: threading.Lock) -> None:
        basetemp = tempfile.mkdtemp(prefix=f"pmemd-pytest-{self.name}-")
        argv = [sys.executable, "-m", "pytest", "-m", self.marker, "-p", "no:cacheprovider",
                f"--basetemp={basetemp}", *options]
        started = time.monotonic()
        self._process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, bufsize=1,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        thread = threading.Thread(target=self._relay, args=(out, lock, started),
                                  name=f"suite-{self.name}", daemon=True)
        thread.start()
        self._thread = thread

    def _relay(self, out: TextIO, lock: threading.Lock, started: float) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            with lock:
                out.write(self.prefix + line)
                out.flush()
        self.status = self._process.wait()
        self.seconds = time.monotonic() - started

    def wait(self) -> int:
        self._thread.join()
        assert self.status is not None
        return self.status


def main(argv: Sequence[str] | None = None) -> int:
    options = list(sys.argv[1:] if argv is None else argv)
    lock = threading.Lock()
    parts = [Part("vm", "vm", "[vm] "), Part("rest", "not vm", "")]
    for part in parts:
        part.start(options, sys.stdout, lock)
    statuses = [part.wait() for part in parts]
    print("\nthe suite's two processes, at the same time:")
    for part in parts:
        print(f"  {part.seconds:7.1f} s  pytest -m '{part.marker}'  (exit {part.status})")
    # 5: pytest collected nothing (options that select tests of one part only)
    if all(status == NOTHING_COLLECTED for status in statuses):
        return NOTHING_COLLECTED
    return next((s for s in statuses if s not in (0, NOTHING_COLLECTED)), 0)


if __name__ == "__main__":
    sys.exit(main())
