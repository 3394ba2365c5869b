"""Does a DAX mount serve its mappings with 2 MiB (PMD) faults? A small probe file on the
mount is allocated, mapped (the kernel aligns a DAX mapping of 2 MiB or more to 2 MiB by
itself) and touched while a private tracefs instance records the faults of this process;
:func:`pmemd.core.pmd.decide_pmd` judges them. The probe file is removed whatever happens;
it is named for the process, since a mount's own pmemd-dax@ unit and an admin's
``pmemd verify-dax`` may probe the same mount at once (systemd starts the unit again when
the mount appears, even by hand)."""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

from pmemd.core.mounts import MountEntry
from pmemd.core.pmd import (
    PMD_SIZE,
    PMD_TRACEPOINT,
    PTE_TRACEPOINT,
    PmdCheck,
    PmdResult,
    decide_pmd,
    parse_faults,
)
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.machine.tracing import TracingUnavailable, trace_instance

PROBE_PREFIX = ".pmemd-pmd-probe-"
PROBE_SIZE = 2 * PMD_SIZE


def _touch(path: Path) -> tuple[str, int, int]:
    """Allocate, map and write-touch the probe: (device, inode, mapping address)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.posix_fallocate(fd, 0, PROBE_SIZE)
        info = os.fstat(fd)
        with mmap.mmap(fd, PROBE_SIZE) as mapping:
            pointer = ctypes.c_char.from_buffer(mapping)
            address = ctypes.addressof(pointer)
            del pointer  # the buffer export would keep the mapping from closing
            for offset in range(0, PROBE_SIZE, PMD_SIZE):
                mapping[offset] = 1
        dev = f"{os.major(info.st_dev)}:{os.minor(info.st_dev)}"
        return dev, info.st_ino, address
    finally:
        os.close(fd)


def probe_pmd(machine: Machine, runner: Runner, region: str, mount: MountEntry) -> PmdCheck:
    """What the faults of a mapping of a fresh file on ``mount`` were."""
    path = Path(machine.path(mount.mountpoint)) / f"{PROBE_PREFIX}{os.getpid()}"

    def unchecked(why: str) -> PmdCheck:
        return PmdCheck(region, mount.mountpoint, mount.dev, PmdResult.UNCHECKED,
                        f"PMD faults not checked: {why}")

    try:
        path.unlink(missing_ok=True)  # left by a killed probe whose pid this process has
        with trace_instance(machine, runner, (PMD_TRACEPOINT, PTE_TRACEPOINT),
                            pid=os.getpid()) as instance:
            try:
                dev, inode, address = _touch(path)
            finally:
                path.unlink(missing_ok=True)
            traced = instance.read()
    except TracingUnavailable as err:
        return unchecked(str(err))
    except OSError as err:
        return unchecked(f"{err.filename or path}: {err.strerror or err}")
    return decide_pmd(parse_faults(traced), region=region, mountpoint=mount.mountpoint,
                      fstype=mount.fstype, dev=dev, inode=inode, address=address)
