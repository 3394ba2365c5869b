"""Shared test helpers: paths of the repository's example machines, and running pmemd."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability import Figure, record

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
MACHINES = EXAMPLES / "machines"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# This Debian host's own systemd units and the programs of those pmemd's units pull in
# (systemd-fsck@, for keep regions), for systemd-analyze --root.
HOST_SYSTEMD = Path("/usr/lib/systemd")
HOST_PROGRAMS = ("systemd-fsck",)


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
def reliability(request: pytest.FixtureRequest) -> Callable[[Figure], None]:
    """Record a figure of the README's Reliability table for this test (call it last,
    after the assertions it stands for)."""
    return lambda figure: record(f"{request.node.nodeid} {figure.kind}", figure)


@pytest.fixture
def machines() -> Path:
    return MACHINES


def install_host_systemd(root: Path) -> Path:
    """The host's unit directory and the programs in HOST_PROGRAMS under ``root``, laid out
    as on Debian 12 (``/lib`` a link to ``usr/lib``), so that ``systemd-analyze verify
    --root`` checks units against systemd's real ones; returns the unit directory."""
    target = root / HOST_SYSTEMD.relative_to("/")
    if not target.exists():
        shutil.copytree(HOST_SYSTEMD / "system", target / "system", symlinks=True)
        for program in HOST_PROGRAMS:
            shutil.copy2(HOST_SYSTEMD / program, target / program)
        if not (root / "lib").exists():
            (root / "lib").symlink_to("usr/lib")
    return target / "system"


# --- what each part of the suite costs -----------------------------------------------------

# Seconds spent in each directory of tests/ (setup, call and teardown: fixtures that build
# an image or a Debian root are part of what their tests cost), summed over its tests.
_SPENT: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    parts = report.nodeid.split("/")
    part = parts[1] if len(parts) > 2 and parts[0] == "tests" else parts[0].split("::")[0]
    _SPENT[part] = _SPENT.get(part, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _SPENT:
        return
    terminalreporter.section("time per part of the suite (setup + call + teardown)")
    for part, seconds in sorted(_SPENT.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.1f} s  tests/{part}")
    terminalreporter.write_line(f"{sum(_SPENT.values()):8.1f} s  in all")


@contextlib.contextmanager
def sigint_as_at_a_terminal() -> Iterator[None]:
    """Children started inside get SIGINT's default disposition (Python in them then raises
    KeyboardInterrupt), even when this run ignores SIGINT, as a background job of a
    non-interactive shell does: an ignored signal stays ignored across exec, a handled one
    goes back to its default."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
