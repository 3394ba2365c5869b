"""The whole pytest suite as ``make test`` runs it: two lanes of pytest processes at the
same time, each lane one process after another.

* lane 1: the guests' tests (marker ``vm``: qemu under TCG) but three modules;
* lane 2: every other test, then those three guests' modules (:data:`SECOND_LANE_GUESTS`).

A guest spends much of its time waiting (for a boot, a device, a timeout it is made to wait
out) and the other tests wait on their subprocesses: one process alone kept this 2-core
machine about half busy (106% of a core over 49.5 minutes). The non-guest tests take about
a quarter of the guests' time (13 and 50 minutes from a clean clone), so lane 2 then takes
two guest modules off lane 1: two guests share the machine from then on (three while the
fleet's pair runs), never the CPU-bound sweeps and two guests at once. Each process has its
own base temporary directory; lines are printed as they come, lane 1's with ``[vm]`` before
them and lane 2's guests' with ``[vm2]``. Options are given to every process. The exit
status is the first failing process's (0 when all pass, or when options leave a process
nothing to run); each process's wall time is printed at the end.

    .venv/bin/python -m tests.suite [PYTEST OPTIONS]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

REPO = Path(__file__).resolve().parents[1]
NOTHING_COLLECTED = 5  # pytest's exit status when no test was selected


# Lane 2's guests, after the other tests: the trial boot's four scenarios (about 14 minutes
# alone) and the bootloader tools' guest (about 6).
SECOND_LANE_GUESTS = ("tests/vm/test_trial.py", "tests/boot/test_vm.py", "tests/vm/test_modes.py")


@dataclass
class Run:
    """One pytest process: what it selects and how its lines are shown."""

    name: str
    selection: tuple[str, ...]
    prefix: str
    status: int | None = None
    seconds: float = 0.0

    def run(self, options: Sequence[str], out: TextIO, lock: threading.Lock) -> int:
        basetemp = tempfile.mkdtemp(prefix=f"pmemd-pytest-{self.name}-")
        argv = [sys.executable, "-m", "pytest", *self.selection, "-p", "no:cacheprovider",
                f"--basetemp={basetemp}", *options]
        started = time.monotonic()
        with subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, bufsize=1,
                              env={**os.environ, "PYTHONUNBUFFERED": "1"}) as process:
            assert process.stdout is not None
            for line in process.stdout:
                with lock:
                    out.write(self.prefix + line)
                    out.flush()
            self.status = process.wait()
        self.seconds = time.monotonic() - started
        # Each process's temporary tree (Debian roots, images, loop files: gigabytes) goes
        # when it passed; a failed run's stays for a look, and its path is said.
        if self.status in (0, NOTHING_COLLECTED):
            shutil.rmtree(basetemp, ignore_errors=True)
        else:
            with lock:
                out.write(f"{self.prefix}kept the failed run's temporary files: {basetemp}\n")
        return self.status


LANES = (
    (Run("vm", ("-m", "vm", *(f"--ignore={path}" for path in SECOND_LANE_GUESTS)), "[vm] "),),
    (Run("rest", ("-m", "not vm"), ""),
     Run("vm2", ("-m", "vm", *SECOND_LANE_GUESTS), "[vm2] ")),
)


def main(argv: Sequence[str] | None = None) -> int:
    options = list(sys.argv[1:] if argv is None else argv)
    lock = threading.Lock()

    def lane(runs: Sequence[Run]) -> None:
        for run in runs:
            run.run(options, sys.stdout, lock)

    threads = [threading.Thread(target=lane, args=(runs,), name=f"lane-{number}")
               for number, runs in enumerate(LANES, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = [run for runs in LANES for run in runs]
    print("\nthe suite's processes (two lanes at the same time):")
    for number, lane_runs in enumerate(LANES, 1):
        for run in lane_runs:
            print(f"  lane {number}: {run.seconds:7.1f} s  pytest {' '.join(run.selection)}  "
                  f"(exit {run.status})")
    statuses = [run.status if run.status is not None else 1 for run in runs]
    # 5: pytest collected nothing (options that select tests of some processes only)
    if all(status == NOTHING_COLLECTED for status in statuses):
        return NOTHING_COLLECTED
    return next((s for s in statuses if s not in (0, NOTHING_COLLECTED)), 0)


if __name__ == "__main__":
    sys.exit(main())
