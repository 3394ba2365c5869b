"""Deliberately slow parts of a machine, for the tests that prove the service stays
responsive while it waits on them.

* :func:`slow_file`: a file of the machine tree replaced by a FIFO, so that whoever reads
  it waits until the test feeds it — a read as slow as the test wants, without FUSE.
* :func:`slow_grubby_machine`: a Fedora machine (BLS entries, the recording ``grubby``
  stand-in in a chroot) whose ``grubby`` first sleeps for as long as the test says, so
  that an Apply takes its time in the bootloader tool, as ``update-grub`` with os-prober
  may on a real machine.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.boot.conftest import config_text, machine_tree, with_standins
from tests.service.harness import TIMEOUT


class SlowFile:
    """A FIFO standing where a file was; :meth:`wait_reader` returns once someone is
    reading it, :meth:`feed` gives the reader the file's old content."""

    def __init__(self, path: Path, content: bytes) -> None:
        self.path = path
        self.content = content
        self.writer: int | None = None
        self.readers = 0  # how many reads were started (and fed) so far

    def wait_reader(self, timeout: float = TIMEOUT) -> None:
        """Until a process has the FIFO open for reading (and is now blocked on it)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.writer = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
                self.readers += 1
                return
            except OSError as err:  # ENXIO: no reader yet
                if err.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    def feed(self) -> None:
        """The waiting reader gets the content, then end of file; the next reader opens a
        new FIFO (the fed one may still be open while its reader finishes)."""
        if self.writer is None:
            return
        fresh = self.path.with_name(f".{self.path.name}.next")
        os.mkfifo(fresh)
        fresh.rename(self.path)
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self.writer, self.content)
        os.close(self.writer)
        self.writer = None


class Feeder:
    """Feeds every reader of a :class:`SlowFile` as it comes, from a thread, counting
    them: how many times the file was read while the ``with`` block ran."""

    def __init__(self, slow: SlowFile) -> None:
        self.slow = slow
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._feed, daemon=True)

    def __enter__(self) -> Feeder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(TIMEOUT)

    def _feed(self) -> None:
        while not self.stop.is_set():
            try:
                self.slow.wait_reader(timeout=0)
            except OSError:
                self.stop.wait(0.01)
                continue
            self.slow.feed()


@contextlib.contextmanager
def slow_file(path: Path) -> Iterator[SlowFile]:
    """``path`` as a FIFO for the ``with`` block; the file is back afterwards (a reader
    still waiting is fed, whatever happened)."""
    content = path.read_bytes()
    path.unlink()
    os.mkfifo(path)
    slow = SlowFile(path, content)
    try:
        yield slow
    finally:
        slow.feed()
        with contextlib.suppress(OSError):  # a reader that opened it again: feed it too
            slow.wait_reader(timeout=0)
            slow.feed()
        path.unlink()
        path.write_bytes(content)


# --- a bootloader tool that takes its time -----------------------------------------------

DELAY_FILE = "etc/pmemd-test-grubby-delay"  # seconds the slow grubby sleeps (under the root)
STARTED_FILE = "run/pmemd-test-grubby-started"  # each run appends a line when it starts
SLOW_GRUBBY = f"""#!/bin/sh
# grubby, slowly: sleeps as many seconds as /{DELAY_FILE} says, then runs the recording
# stand-in (tests/boot/standins/grubby).
echo "$$" >> /{STARTED_FILE}
sleep "$(cat /{DELAY_FILE})"
exec /sbin/grubby.real "$@"
"""
FIRST = config_text(("data", "4G", "12G"))
SECOND = config_text(("data", "4G", "12G"), ("cache", "2G", "10G"))
ENTRIES = "boot/loader/entries"


@contextlib.contextmanager
def slow_grubby_machine(target: Path, delay: float, config: str = FIRST) -> Iterator[Path]:
    """A Fedora 39 machine (16 GiB, BLS entries) with ``config``, usable as a chroot, whose
    grubby sleeps ``delay`` seconds before it does its work."""
    root = machine_tree(target, "fedora39", config=config)
    with with_standins(root, "grubby"):
        sbin = root / "sbin"
        (sbin / "grubby").rename(sbin / "grubby.real")
        (sbin / "grubby").write_text(SLOW_GRUBBY)
        (sbin / "grubby").chmod(0o755)
        set_delay(root, delay)
        (root / STARTED_FILE).parent.mkdir(parents=True, exist_ok=True)
        yield root


def set_delay(root: Path, seconds: float) -> None:
    (root / DELAY_FILE).write_text(f"{seconds:g}\n")


def grubby_pids(root: Path) -> list[int]:
    """The process of each run of the slow grubby so far (each leads its process group)."""
    path = root / STARTED_FILE
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def grubby_runs(root: Path) -> int:
    """How many times the slow grubby has started."""
    return len(grubby_pids(root))


def wait_for_grubby(root: Path, runs: int, timeout: float = TIMEOUT) -> None:
    """Until the slow grubby has started ``runs`` times (it is then sleeping)."""
    deadline = time.monotonic() + timeout
    while grubby_runs(root) < runs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"grubby did not start {runs} times within {timeout:g}s")
        time.sleep(0.02)


def entry_options(root: Path) -> list[str]:
    return [line for p in sorted((root / ENTRIES).glob("*.conf"))
            for line in p.read_text().splitlines() if line.startswith("options")]

