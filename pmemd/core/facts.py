"""(pure) What the planner knows about a machine: one reading of it, typed.

:mod:`pmemd.machine.facts` reads a machine (under its root) into :class:`MachineFacts`;
the planner and the reports only ever see this."""

from __future__ import annotations

from dataclasses import dataclass

from pmemd.core.cmdline import Cmdline
from pmemd.core.devices import DeviceFacts
from pmemd.core.e820 import MemoryMap
from pmemd.core.history import BootHistory
from pmemd.core.kernel import KernelInfo
from pmemd.core.pmd import PmdCheck


@dataclass(frozen=True)
class MachineFacts:
    """What the pure planner needs to know about a machine."""

    memory: MemoryMap
    cmdline: Cmdline
    kernel: KernelInfo
    devices: DeviceFacts | None = None  # None: not read (device checks skipped)
    history: BootHistory | None = None  # None: not read (what make-filesystem did unknown)
    memory_block: int | None = None  # the memory hotplug block size; None: unknown
    pmd_checks: tuple[PmdCheck, ...] = ()  # what verify-dax found about PMD faults this boot
