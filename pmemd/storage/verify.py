"""Is a region's filesystem really DAX? Mounts from ``/proc/self/mountinfo`` and the device's
``queue/dax`` flag decide; xfs mounts without DAX when it cannot have it ("Turning off DAX"),
so a mount that asked for ``dax=always`` proves nothing until it is checked. What
``pmemd-dax@<mountpoint>.service`` runs after every region's mount."""

from __future__ import annotations

from dataclasses import dataclass

from pmemd.core.devices import dax_problem
from pmemd.core.events import dax_failed
from pmemd.core.model import Config
from pmemd.core.mounts import MountEntry, mount_at
from pmemd.errors import NoFilesystem, NoSuchRegion, NotDax
from pmemd.machine.facts import read_mounts
from pmemd.machine.journal import send_event
from pmemd.machine.root import DEV_DIR, Machine
from pmemd.storage.locate import Located, locate_region


@dataclass(frozen=True)
class DaxMount:
    located: Located
    mount: MountEntry

    def describe(self) -> str:
        device = self.located.device
        dax = ",".join(o for o in self.mount.super_options if o.startswith("dax"))
        return (f"region {self.located.region.name}: {self.mount.mountpoint} "
                f"({self.mount.fstype} on {device.name}, {dax}, queue/dax "
                f"{'1' if device.dax else 'unknown'}) is a DAX mount")


def verify_region(machine: Machine, config: Config, name: str) -> DaxMount:
    """Region ``name``'s filesystem mounted with DAX on its own device, or
    :class:`NotDax` (or why the region has no device) saying why not; a mount that is not
    DAX is an event in the journal."""
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
    return DaxMount(located, mount)
