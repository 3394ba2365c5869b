"""``pmemd memmap --dmesg`` reads a saved boot log bounded: a regular file, a pipe or
standard input of at most 16 MiB; a device (/dev/zero never ends) or a directory is a
clear error, a FIFO nobody writes to does not hang."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from pmemd.machine.bootlog import MAX_BOOT_LOG_BYTES
from tests.conftest import FIXTURES, REPO, run_pmemd

REFERENCE = FIXTURES / "dmesg/reference-16g.txt"
ONE_GIB = 1 << 30


def _limited() -> None:
    """The child may use at most 1 GiB: reading /dev/zero to the end would fail."""
    resource.setrlimit(resource.RLIMIT_AS, (ONE_GIB, ONE_GIB))


def test_a_device_is_refused_before_it_is_read() -> None:
    done = subprocess.run([sys.executable, "-m", "pmemd", "memmap", "--dmesg", "/dev/zero"],
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          preexec_fn=_limited, check=False)
    assert done.returncode == 1
    assert done.stderr == ("pmemd: /dev/zero: not a regular file or a pipe; save the log "
                           "first (dmesg > FILE) and give that file\n")


def test_a_directory_is_named(tmp_path: Path) -> None:
    done = run_pmemd("memmap", "--dmesg", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr == f"pmemd: {tmp_path}: is a directory, not a saved kernel log\n"


def test_a_file_larger_than_any_kernel_log_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "huge.log"
    with big.open("wb") as handle:
        handle.write(REFERENCE.read_bytes())
        handle.truncate(MAX_BOOT_LOG_BYTES + 1)
    done = run_pmemd("memmap", "--dmesg", str(big))
    assert done.returncode == 1
    assert "more than 16 MiB, more than any kernel log" in done.stderr


def test_standard_input_is_bounded_too() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pmemd", "memmap", "--dmesg", "-"], cwd=REPO, timeout=60,
        stdin=subprocess.Popen(["head", "-c", str(MAX_BOOT_LOG_BYTES + 4096), "/dev/zero"],
                               stdout=subprocess.PIPE).stdout,
        capture_output=True, preexec_fn=_limited, check=False)
    assert done.returncode == 1
    assert b"<stdin>: more than 16 MiB" in done.stderr


def test_a_pipe_is_read(tmp_path: Path) -> None:
    """``pmemd memmap --dmesg <(dmesg)``: the shell passes /dev/fd/N, a pipe."""
    done = subprocess.run(
        ["bash", "-c", '"$0" -m pmemd memmap --dmesg <(cat "$1")', sys.executable,
         str(REFERENCE)], capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Usable RAM: 15 GiB in 3 ranges" in done.stdout


def test_a_fifo_without_a_writer_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = run_pmemd("memmap", "--dmesg", str(fifo))
    assert done.returncode == 1
    assert "no memory map found" in done.stderr
