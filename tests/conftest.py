"""Shared test helpers: paths of the repository's example machines, and running pmemd."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
MACHINES = EXAMPLES / "machines"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


def run_pmemd(*args: str, stdin: str | None = None, cwd: Path | None = None) -> Completed:
    """Run ``python -m pmemd ARGS`` as a user would, from the repository."""
    done = subprocess.run([sys.executable, "-m", "pmemd", *args], capture_output=True,
                          text=True, input=stdin, cwd=cwd or REPO, check=False, timeout=120)
    return Completed(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def machines() -> Path:
    return MACHINES
