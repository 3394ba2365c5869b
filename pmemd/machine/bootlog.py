"""A saved boot log (``dmesg``, ``journalctl -k``) read for the memory maps the kernel
printed in it (``pmemd memmap --dmesg FILE``): bounded, and only from a regular file, a
pipe or standard input — never from a device that does not end (``/dev/zero``) or waits
(``/dev/kmsg``)."""

from __future__ import annotations

import os
import stat
import sys
from typing import BinaryIO

from pmemd.core.dmesg import memory_map_from_dmesg
from pmemd.core.e820 import E820ParseError, MemoryMap
from pmemd.core.visible import visible
from pmemd.errors import MachineError

# The kernel's log buffer is at most 32 MiB (CONFIG_LOG_BUF_SHIFT=25) and usually 128 KiB to
# 1 MiB; the saved log of a boot is far below this.
MAX_BOOT_LOG_BYTES = 16 << 20
STDIN = "-"


def _read_bounded(handle: BinaryIO, shown: str) -> bytes:
    try:
        data = handle.read(MAX_BOOT_LOG_BYTES + 1)
    except OSError as err:
        raise MachineError(f"{shown}: {err.strerror}") from None
    if len(data) > MAX_BOOT_LOG_BYTES:
        raise MachineError(
            f"{shown}: more than {MAX_BOOT_LOG_BYTES >> 20} MiB, more than any kernel log; "
            "save the log of one boot (dmesg > FILE, or journalctl -k -b > FILE)")
    return data


def _read_file(path: str, shown: str) -> bytes:
    """A regular file or a pipe (``--dmesg <(dmesg)``); opening does not wait for a FIFO's
    writer."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise MachineError(f"{shown}: {err.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise MachineError(f"{shown}: is a directory, not a saved kernel log")
        raise MachineError(f"{shown}: not a regular file or a pipe; save the log first "
                           "(dmesg > FILE) and give that file")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as handle:
        return _read_bounded(handle, shown)


def read_boot_log_map(source: str) -> MemoryMap:
    """The memory maps the kernel printed at boot, from the saved log at ``source``
    (``-``: standard input), reading at most :data:`MAX_BOOT_LOG_BYTES`."""
    shown = "<stdin>" if source == STDIN else visible(source)
    data = (_read_bounded(sys.stdin.buffer, shown) if source == STDIN
            else _read_file(source, shown))
    try:
        return memory_map_from_dmesg(data.decode("utf-8", errors="replace"), shown)
    except E820ParseError as err:
        where = f"{shown}:{err.line}" if err.line else shown
        raise MachineError(f"{where}: {err}") from None
