"""Is a region's filesystem really DAX? Mounts from ``/proc/self/mountinfo`` and the device's
``queue/dax`` flag decide; xfs mounts without DAX when it cannot have it ("Turning off DAX"),
so a mount that asked for ``dax=always`` proves nothing until it is checked. Then a probe
(:mod:`pmemd.storage.pmdprobe`) checks that a mapping is served by 2 MiB faults: one that
falls back to 4 KiB faults is degraded, and the record of it (under ``/run/pmemd/pmd``) is
what the status shows. What ``pmemd-dax@<mountpoint>.service`` runs after every region's
mount."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pmemd.core.devices import dax_problem
from pmemd.core.events import dax_failed, pmd_fallback
from pmemd.core.model import Config
from pmemd.core.mounts import MountEntry, mount_at
from pmemd.core.pmd import PmdCheck, PmdResult
from pmemd.errors import NoFilesystem, NoSuchRegion, NotDax, PmdFallback
from pmemd.machine.atomic import write_atomic
from pmemd.machine.facts import read_mounts
from pmemd.machine.journal import send_event
from pmemd.machine.root import DEV_DIR, Machine
from pmemd.machine.runner import Runner
from pmemd.storage.locate import Located, locate_region
from pmemd.storage.pmdprobe import probe_pmd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaxMount:
    located: Located
    mount: MountEntry
    pmd: PmdCheck | None = None

    def describe(self) -> str:
        device = self.located.device
        dax = ",".join(o for o in self.mount.super_options if o.startswith("dax"))
        said = (f"region {self.located.region.name}: {self.mount.mountpoint} "
                f"({self.mount.fstype} on {device.name}, {dax}, queue/dax "
                f"{'1' if device.dax else 'unknown'}) is a DAX mount")
        return said if self.pmd is None else f"{said}\n{self.pmd.reason}"


def verify_region(machine: Machine, config: Config, name: str, *,
                  runner: Runner | None = None) -> DaxMount:
    """Region ``name``'s filesystem mounted with DAX on its own device, or
    :class:`NotDax` (or why the region has no device) saying why not; a mount that is not
    DAX is an event in the journal. A DAX mount's faults are then probed (:func:`check_pmd`)."""
    region = config.region(name)
    if region is None:
        raise NoSuchRegion(name, [r.name for r in config.regions], config.source.path)
    if region.filesystem is None:
        raise NoFilesystem(name)
    located = locate_region(machine, config, name)
    mountpoint = region.filesystem.mountpoint
    mount = mount_at(read_mounts(machine), mountpoint)
    problem = f"{mountpoint} is not mounted" if mount is None else dax_problem(
        mount, located.device)
    if problem is not None:
        error = NotDax(problem)
        error.journaled = send_event(machine, dax_failed(
            region=name, mountpoint=mountpoint, device=f"{DEV_DIR}/{located.device.name}",
            reason=problem))
        raise error
    assert mount is not None
    return check_pmd(machine, runner or Runner(), DaxMount(located, mount))


def check_pmd(machine: Machine, runner: Runner, dax: DaxMount) -> DaxMount:
    """Probe ``dax``'s PMD faults and record the result for the status; a mapping that
    fell back to 4 KiB faults is :class:`PmdFallback` and an event in the journal (a probe
    that could not check says so, and is no failure)."""
    name = dax.located.region.name
    found = probe_pmd(machine, runner, name, dax.mount)
    try:
        write_atomic(machine.pmd_check(name), found.render())
    except OSError as err:  # not root: the check still says what it found, here
        log.warning("the PMD check of region %s is not recorded for the status: %s", name, err)
    if found.result is PmdResult.FALLBACK:
        error = PmdFallback(found.reason)
        error.journaled = send_event(machine, pmd_fallback(
            region=name, mountpoint=dax.mount.mountpoint,
            device=f"{DEV_DIR}/{dax.located.device.name}", reason=found.reason))
        raise error
    return DaxMount(dax.located, dax.mount, found)
