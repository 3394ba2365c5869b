"""The one lock that every change of pmemd's state and of the boot configuration holds,
across processes: ``pmemd reconcile`` (at boot or by hand), ``reconcile --remove-all``
(package removal), ``make-filesystem``, and the service's Apply, SetConfig and Format.

Without it they interleave: two reconciles each read ``state.json``, each write the
bootloader's files, and the second records what it read before the first wrote — an
option pmemd owns is lost from the record and later looks foreign. It is an ``flock`` on
``/run/pmemd/lock`` (released by the kernel when the holder exits, however it exits); the
holder writes its pid and what it is doing into the file, so a waiter can say who it is
waiting for. A waiter waits a bounded time, then fails with :class:`~pmemd.errors.Busy`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator

from pmemd.errors import Busy
from pmemd.machine.root import Machine

POLL = 0.05  # seconds between tries while waiting


def _holder(fd: int) -> str:
    """Who holds the lock, as the holder wrote it ("pid N: what")."""
    try:
        text = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
    except OSError:
        return "unknown"
    return text or "unknown"


@contextlib.contextmanager
def change_lock(machine: Machine, what: str, *, wait: float,
                waiting: Callable[[str], object] | None = None) -> Iterator[None]:
    """Hold pmemd's change lock for ``what`` (e.g. ``pmemd reconcile``). When another
    process holds it, ``waiting`` is told who (once) and this waits up to ``wait`` seconds,
    then raises :class:`Busy` naming the holder."""
    path = machine.runtime_dir / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _acquire(fd, what, wait, waiting)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {what}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # and with it the lock


def _acquire(fd: int, what: str, wait: float, waiting: Callable[[str], object] | None
             ) -> None:
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _holder(fd)
        if time.monotonic() >= deadline:
            raise Busy(f"{what}: another change of pmemd's state holds its lock ({holder}); "
                       "try again when it finishes")
        if waiting is not None and not told:
            waiting(holder)
            told = True
        time.sleep(POLL)
