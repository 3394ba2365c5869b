"""Every ``pmemd`` command that has ``--json`` prints a JSON document on stdout when it
fails too (it printed nothing): ``{"error": {"kind", "message", "location", "problems",
"status"}}``, with the exit status unchanged and the message on stderr as before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MACHINES, REPO, run_pmemd

SERVER = str(MACHINES / "server-16g")
BAD = "version: 1\nboot:\n  reboot: sometimes\n"


def _error(stdout: str) -> dict[str, object]:
    document = json.loads(stdout)
    assert set(document) == {"version", "error"}
    error = document["error"]
    assert set(error) == {"kind", "message", "location", "problems", "more_problems",
                          "status"}
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize("command", [["plan"], ["reconcile", "--dry-run"], ["memmap"]])
def test_an_invalid_config(command: list[str], tmp_path: Path) -> None:
    config = tmp_path / "pmemd.yaml"
    config.write_text(BAD)
    done = run_pmemd(*command, "--json", "--root", SERVER, "--config", str(config))
    assert done.returncode == 3, done.stderr
    error = _error(done.stdout)
    assert error["kind"] == "ConfigError" and error["status"] == 3
    assert error["location"] == {"file": str(config), "line": 3, "column": 11}
    assert error["problems"] == [{"message": "'sometimes' is not one of: never, auto",
                                  "key": "boot.reboot", "file": str(config), "line": 3,
                                  "column": 11}]
    assert error["more_problems"] == 0
    assert str(error["message"]).startswith(f"{config}:3:11: boot.reboot: 'sometimes'")
    assert done.stderr.startswith(f"{config}:3:11: boot.reboot: 'sometimes'")  # as before


def test_many_problems_are_counted_not_all_listed(tmp_path: Path) -> None:
    config = tmp_path / "pmemd.yaml"
    config.write_text("version: 1\nboot: {" + ", ".join(f"k{i}: 1" for i in range(500)) + "}\n")
    done = run_pmemd("plan", "--json", "--root", SERVER, "--config", str(config))
    error = _error(done.stdout)
    assert len(error["problems"]) == 50 and error["more_problems"] == 450  # type: ignore


def test_a_machine_that_cannot_be_read(tmp_path: Path) -> None:
    done = run_pmemd("memmap", "--json", "--root", str(tmp_path))
    assert done.returncode == 1
    error = _error(done.stdout)
    assert error["kind"] == "MachineError" and error["status"] == 1
    assert error["location"] is None and error["problems"] == []
    assert done.stderr == f"pmemd: {error['message']}\n"


def test_a_file_that_is_no_config(tmp_path: Path) -> None:
    done = run_pmemd("plan", "--json", "--root", SERVER, "--config", "/dev/null")
    assert done.returncode == 3
    error = _error(done.stdout)
    assert error["location"] == {"file": "/dev/null", "line": 1, "column": 1}
    assert error["message"] == "/dev/null:1:1: is a character device, not a regular file"


@pytest.mark.parametrize("argv", [["memmap", "--json", "--alignment", "3M"],
                                  ["plan", "--json", "--root", "/etc/hostname"],
                                  ["reconcile", "--json", "--no-such-option"]])
def test_a_usage_error(argv: list[str]) -> None:
    done = run_pmemd(*argv)
    assert done.returncode == 2
    error = _error(done.stdout)
    assert error["kind"] == "UsageError" and error["status"] == 2
    assert "error: " in done.stderr and str(error["message"]) in done.stderr


def test_without_json_nothing_is_printed_on_stdout(tmp_path: Path) -> None:
    done = run_pmemd("plan", "--root", SERVER, "--config", str(tmp_path / "missing.yaml"))
    assert (done.returncode, done.stdout) == (3, "")


@pytest.mark.parametrize(("full", "json_too"), [("stderr", False), ("stderr", True),
                                                ("stdout", True), ("both", True)])
def test_an_error_that_cannot_be_written_still_exits_with_its_status(
        tmp_path: Path, full: str, json_too: bool) -> None:
    """A full disk (or EIO) where the error message goes: no traceback, the exit status
    still says what happened (3: the config is invalid)."""
    config = tmp_path / "pmemd.yaml"
    config.write_text(BAD)
    argv = [sys.executable, "-m", "pmemd", "plan", *(["--json"] if json_too else []),
            "--root", SERVER, "--config", str(config)]
    with open("/dev/full", "w") as broken, open(tmp_path / "out", "w") as out, \
            open(tmp_path / "err", "w") as err:
        done = subprocess.run(argv, cwd=REPO, check=False, timeout=120,
                              stdout=broken if full in ("stdout", "both") else out,
                              stderr=broken if full in ("stderr", "both") else err)
    assert done.returncode == 3
    assert "Traceback" not in (tmp_path / "err").read_text()
    if full == "stderr" and json_too:
        assert _error((tmp_path / "out").read_text())["status"] == 3
