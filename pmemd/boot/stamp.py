"""Writing and removing the converged stamp (:mod:`pmemd.fastpath.converged` reads it at
every boot): after a reconcile that changed nothing, every input it read, keyed so that
the next one is answered without the full code."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pmemd.core.ranges import MemRange
from pmemd.fastpath.converged import render_stamp, stamp_key
from pmemd.fastpath.fingerprint import remember_code
from pmemd.machine.atomic import remove_durably, write_atomic
from pmemd.machine.root import Machine

remember_code()  # the code this process runs is the code the stamps it writes are for


def write_stamp(machine: Machine, root_arg: str, config_arg: str | None, *,
                inputs: Sequence[Path], regions: Sequence[MemRange], output: str,
                errors: str = "") -> None:
    """Record ``inputs`` (and the code and invocation) after a converged reconcile run as
    ``reconcile --root ROOT_ARG [--config CONFIG_ARG]``, which printed ``output`` and
    ``errors``. A replay records every new boot in the boot history as the full path does,
    from the files named here."""
    key = stamp_key(
        os.path.abspath(root_arg), os.path.abspath(config_arg) if config_arg else "",
        inputs=[str(p) for p in inputs],
        virtual=[os.path.abspath(p) for p in machine.virtual_roots],
        iomem=os.path.abspath(machine.iomem), firmware=os.path.abspath(machine.firmware_memmap),
        regions=[(r.start, r.end) for r in regions])
    history = (machine.boot_history, machine.boot_id, machine.iomem, machine.sys_nd_devices)
    text = render_stamp(key, history=[str(p) for p in history], output=output, errors=errors)
    write_atomic(machine.converged_stamp, text, mode=0o644)


def remove_stamp(machine: Machine) -> None:
    """The next reconcile runs in full (something changed, or this one was not converged)."""
    remove_durably(machine.converged_stamp)
