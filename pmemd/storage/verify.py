"""Is a region's filesystem really DAX? Mounts from ``/proc/self/mountinfo`` and the device's
``queue/dax`` flag decide; xfs mounts without DAX when it cannot have it ("Turning off DAX"),
so a mount that asked for ``dax=always`` proves nothing until it is checked. What
``pmemd-dax@<mountpoint>.service`` runs after every region's mount."""

from __future__ import annotations

from dataclasses import dataclass

from pmemd.core.devices import dax_problem
from pmemd.core.model import Config
from pmemd.core.mounts import MountEntry, mount_at
from pmemd.errors import NoFilesystem, NoSuchRegion, NotDax
from pmemd.machine.facts import read_mounts
from pmemd.machine.root import Machine
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
    :class:`NotDax` (or why the region has no device) saying why not."""
    region = config.region(name)
    if region is None:
        raise NoSuchRegion(name, [r.name for r in config.regions], config.source.path)
    if region.filesystem is None:
        raise NoFilesystem(name)
    located = locate_region(machine, config, name)
    mountpoint = region.filesystem.mountpoint
    mount = mount_at(read_mounts(machine), mountpoint)
    if mount is None:
        raise NotDax(f"{mountpoint} is not mounted")
    problem = dax_problem(mount, located.device)
    if problem is not None:
        raise NotDax(problem)
    return DaxMount(located, mount)
