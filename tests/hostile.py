"""Running pmemd on hostile input and measuring what it costs: the bytes it writes and the
peak memory of the process, taken from a fresh wrapper process whose only child is the
command (``getrusage(RUSAGE_CHILDREN)`` of the test process would count every child the
suite ever started)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The wrapper: runs argv with stdout and stderr counted (not kept beyond a head), and
# reports the child's exit status, byte counts, a head of each stream and its peak RSS.
_WRAPPER = r"""
import json, resource, subprocess, sys
argv = json.loads(sys.argv[1])
done = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "returncode": done.returncode,
    "stdout_bytes": len(done.stdout), "stderr_bytes": len(done.stderr),
    "stdout": done.stdout[:200000].decode("utf-8", "replace"),
    "stderr": done.stderr[:200000].decode("utf-8", "replace"),
    "max_rss_kib": usage.ru_maxrss,
}))
"""


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout_bytes: int
    stderr_bytes: int
    stdout: str  # the first 200,000 bytes
    stderr: str
    max_rss_kib: int

    @property
    def output_bytes(self) -> int:
        return self.stdout_bytes + self.stderr_bytes


def run_measured(argv: list[str], timeout: float = 60) -> Measured:
    """``argv`` run from the repository, with what it wrote and its peak memory; past
    ``timeout`` the wrapper and the command are killed (their own process group)."""
    with subprocess.Popen([sys.executable, "-c", _WRAPPER, json.dumps(argv)], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as wrapper:
        try:
            out, err = wrapper.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(wrapper.pid, signal.SIGKILL)
            wrapper.communicate()
            raise
    assert wrapper.returncode == 0, err
    return Measured(**json.loads(out))


def pmemd_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "pmemd", *args]
