"""What ``pmemd plan``, ``pmemctl`` and the service show of the bootloader: which one was
found (and why), what its next boot carries, and which options pmemd owns — read, never
written, and usable without a bootloader or a valid config."""

from __future__ import annotations

from dataclasses import dataclass

from pmemd.boot.backends.base import NextBoot
from pmemd.boot.detect import Detection, detect
from pmemd.core.cmdline import Cmdline
from pmemd.core.facts import MachineFacts
from pmemd.core.model import BootloaderChoice, Config
from pmemd.core.plan import Plan, plan
from pmemd.errors import MachineError
from pmemd.machine.root import Machine
from pmemd.machine.state import read_state


@dataclass(frozen=True)
class BootView:
    """Which bootloader ``pmemd plan`` found and what its next boot carries; unlike
    reconcile, plan works without one (changes are then judged against the running
    command line)."""

    detection: Detection
    next_boot: NextBoot | None
    owned: tuple[str, ...]

    @property
    def target(self) -> Cmdline | None:
        if self.next_boot is None:
            return None
        return self.next_boot.cmdline or Cmdline(())


def read_boot_view(machine: Machine, config: Config | None) -> BootView:
    """``config``: the bootloader it names; ``None`` (no usable config): auto-detected."""
    detection = detect(machine, config.boot.bootloader if config is not None
                       else BootloaderChoice.AUTO)
    owned = read_state(machine).owned
    if detection.backend is None:
        return BootView(detection, None, owned)
    try:
        next_boot = detection.backend.read_next_boot()
    except MachineError as err:
        next_boot = NextBoot(None, str(err), note="unreadable")
    return BootView(detection, next_boot, owned)


def plan_next_boot(config: Config, facts: MachineFacts, view: BootView) -> Plan:
    """The plan judged against the bootloader's next boot (against the running command
    line when no bootloader was found), knowing which options pmemd owns."""
    return plan(config, facts, owned=view.owned, next_boot=view.target)
