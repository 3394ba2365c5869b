"""The one runner (pmemd.machine.runner) with real processes: argv only, a missing program
is exit 127, a failure keeps the output, and a command that overstays its timeout — or whose
caller is interrupted — is killed with every process it started, before anything else."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pmemd.errors import CommandError
from pmemd.machine.runner import Runner
from tests.conftest import sigint_as_at_a_terminal


def test_output_and_exit_status() -> None:
    result = Runner().run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    with pytest.raises(CommandError, match="exit status 3") as failed:
        Runner().run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert "out\nerr" in str(failed.value)


def test_input_and_no_terminal() -> None:
    assert Runner().run(["cat"], input="given\n").stdout == "given\n"
    assert Runner().run(["cat"]).stdout == ""  # stdin is /dev/null, never this terminal


def test_missing_program_is_127_and_argv_must_be_strings() -> None:
    with pytest.raises(CommandError, match="is not installed") as failed:
        Runner().run(["pmemd-no-such-program"])
    assert failed.value.returncode == 127
    with pytest.raises(TypeError):
        Runner().run(["echo", 1])  # type: ignore[list-item]


def test_dry_run_records_changes_and_runs_queries() -> None:
    runner = Runner(dry_run=True)
    assert runner.run(["false"]).returncode == 0  # a change: recorded, not run
    assert runner.run(["echo", "q"], mutating=False).stdout == "q\n"
    assert runner.recorded == [("false",), ("echo", "q")]


def _leaves_a_child(marker: Path) -> list[str]:
    """A tool that starts a helper in the background (as update-grub starts grub-mkconfig)
    which writes ``marker`` after 2 s, and then hangs."""
    return ["sh", "-c", f"(sleep 2; echo late > {marker}) & sleep 3031"]


def test_a_timeout_kills_the_tool_and_every_process_it_started(tmp_path: Path) -> None:
    marker = tmp_path / "moved-into-place"
    started = time.monotonic()
    with pytest.raises(CommandError, match=r"timed out after 0\.5 s"):
        Runner().run(_leaves_a_child(marker), timeout=0.5)
    assert time.monotonic() - started < 10
    time.sleep(3)
    assert not marker.exists()


def test_an_interrupted_caller_kills_the_tool_and_its_children(tmp_path: Path) -> None:
    """Ctrl-C (or a SIGTERM turned into an exception) while a tool runs: the tool's whole
    group is killed before the exception goes on (to the rollback)."""
    marker = tmp_path / "moved-into-place"
    script = (f"from pmemd.machine.runner import Runner\n"
              f"Runner().run({_leaves_a_child(marker)!r})\n")
    with sigint_as_at_a_terminal():
        process = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE,
                                   text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and subprocess.run(
            ["pgrep", "-f", "sleep 3031"], capture_output=True, check=False).returncode:
        time.sleep(0.05)  # until the tool runs (a loaded machine starts Python slowly)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    assert "KeyboardInterrupt" in err
    time.sleep(3)
    assert not marker.exists()
