"""Make a region's filesystem — or refuse, with the evidence: what
``pmemd-makefs@<device>.service`` runs before every region's mount (``pmemd
make-filesystem NAME``), and D-Bus ``Format``.

The device is proven to be the region's (address and size in sysfs, the node's device
number, its size), never mounted or held; the evidence (``blkid -p``, the first and last
MiB, the boot history) goes to :func:`pmemd.core.makefs.decide`; what was made or kept is
recorded in the boot history for the next boot's decision.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pmemd.core.events import filesystem_kept, filesystem_made, filesystem_refused
from pmemd.core.history import FsRecord, Prior, prior_of
from pmemd.core.makefs import Action, Decision, Probe, decide, mkfs_argv, parse_blkid_export
from pmemd.core.model import Config, Filesystem
from pmemd.core.mounts import MountEntry, mounts_of
from pmemd.core.ranges import MiB
from pmemd.core.sizes import format_bytes
from pmemd.errors import CommandError, MachineError, NoFilesystem, Refused
from pmemd.machine.atomic import write_atomic
from pmemd.machine.facts import read_mounts
from pmemd.machine.history import read_history, record_boot, record_filesystem
from pmemd.machine.journal import send_event
from pmemd.machine.root import DEV_DIR, Machine
from pmemd.machine.runner import Runner
from pmemd.storage.locate import Located, locate_region

SAMPLE = 1 * MiB  # how much of each end of the device must be zero to call it blank
BLKID_NOTHING = 2  # blkid -p exit status: no signature found
BLKID_AMBIVALENT = 8  # several signatures: blkid will not say which is real


def probe_device(runner: Runner, device: Path, size: int) -> Probe:
    """``blkid -p`` (low-level probe, no cache) and, when it finds nothing, a look at the
    first and last MiB."""
    result = runner.run(["blkid", "-p", "-o", "export", str(device)], check=False,
                        mutating=False)
    if result.returncode == BLKID_AMBIVALENT:
        return Probe(ambivalent=True)
    if result.returncode == 0:
        return Probe(parse_blkid_export(result.stdout))
    if result.returncode != BLKID_NOTHING:
        raise CommandError(result.argv, result.returncode, result.output)
    return Probe(nonzero_at=_first_nonzero(device, size))


def _first_nonzero(device: Path, size: int) -> int | None:
    sample = min(SAMPLE, size)
    with device.open("rb") as handle:
        for offset in sorted({0, max(size - sample, 0)}):
            handle.seek(offset)
            data = handle.read(sample)
            stripped = data.lstrip(b"\0")
            if stripped:
                return offset + len(data) - len(stripped)
    return None


def _device_number(text: str) -> int:
    major, _, minor = text.partition(":")
    return os.makedev(int(major), int(minor))


def check_device(located: Located) -> int:
    """The node is the device sysfs matched to the region, and as large as the region;
    returns its size."""
    node, device = located.node, located.device
    try:
        info = node.stat()
    except OSError as err:
        raise MachineError(f"{node}: {err.strerror}") from None
    if not stat.S_ISBLK(info.st_mode):
        raise Refused(f"{node} is not a block device")
    if info.st_rdev != _device_number(device.dev):
        found = f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"
        raise Refused(f"{node} is device {found}, but sysfs says {device.name} of region "
                           f"{located.region.name!r} is {device.dev}: not the region's device")
    with node.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
    # fsdax with an info block (pfnX.Y): the disk is the namespace less the info block and
    # page array, as large as sysfs says; otherwise the whole region.
    expected = device.size if device.pfn is not None else located.range.size
    if size != expected or size > located.range.size:
        raise Refused(f"{node} holds {format_bytes(size)}, region {located.region.name!r} "
                           f"is {format_bytes(expected)}: not the region's device")
    return size


def check_unused(located: Located, mounts: Sequence[MountEntry], holders: Sequence[str]
                 ) -> None:
    """Refuse a device that is mounted or held (device-mapper, md, …)."""
    mounted = mounts_of(mounts, located.device.dev)
    if mounted:
        where = ", ".join(f"{m.mountpoint} ({m.fstype})" for m in mounted)
        raise Refused(f"{located.device.name} is mounted at {where} (mountinfo, device "
                           f"{located.device.dev}); pmemd never formats a mounted device")
    if holders:
        raise Refused(f"{located.device.name} is in use by {', '.join(holders)} "
                           "(sysfs holders); pmemd never formats a device in use")


def check_device_unused(machine: Machine, located: Located) -> None:
    """:func:`check_unused` with this machine's mounts and the device's sysfs holders."""
    directory = machine.sys_block / located.device.name / "holders"
    holders = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    check_unused(located, read_mounts(machine), holders)


def made_this_boot(machine: Machine, region: str, probe: Probe) -> bool:
    """The device holds the filesystem make-filesystem made for ``region`` on this boot
    (its UUID is the one recorded then)."""
    record = machine.filesystems_made / region
    return record.is_file() and (probe.fields.get("UUID") or "?") == (
        machine.read_text(record) or "").strip()


@dataclass(frozen=True)
class Outcome:
    region: str
    device: str
    decision: Decision
    argv: tuple[str, ...] = ()  # the mkfs run, when one ran
    warnings: tuple[str, ...] = ()  # the boot history could not be written
    fstype: str = ""
    uuid: str = ""  # the filesystem's, as blkid reads it (made: after mkfs)
    journaled: bool = False  # the journal took the event: no need to say it again

    def message(self) -> str:
        did = "made" if self.decision.action is Action.CREATE else "kept"
        return f"region {self.region}: {did} the filesystem on {self.device}: " \
               f"{self.decision.reason}"

    def announce(self, machine: Machine, device: str) -> Outcome:
        """This outcome in the journal (``device``: the node's path on the target), and
        whether the journal took it."""
        fields = {"region": self.region, "device": device, "fstype": self.fstype,
                  "uuid": self.uuid, "reason": self.decision.reason}
        sent = send_event(machine, filesystem_made(
            self.message(), alarming=self.decision.alarming, **fields)
            if self.decision.action is Action.CREATE
            else filesystem_kept(self.message(), **fields))
        return replace(self, journaled=sent)


@dataclass(frozen=True)
class _Device:
    """A region's device proven usable, and what is known about what it holds."""

    located: Located
    fs: Filesystem
    size: int
    probe: Probe
    made_this_boot: bool  # pmemd made the filesystem it holds earlier on this boot
    boot_id: str | None
    prior: Prior

    def record(self, machine: Machine, uuid: str, action: str, decision: Decision
               ) -> tuple[str, ...]:
        """This boot's filesystem in the boot history; a failure to write it is a warning
        (the filesystem itself is fine)."""
        if self.boot_id is None:
            return ()
        name = self.located.region.name
        try:
            record_filesystem(machine, FsRecord(
                self.boot_id, self.located.range, self.fs.type.value, uuid, name, action,
                decision.basis, decision.reason))
        except MachineError as err:
            return (str(err),)
        return ()


def _examine(machine: Machine, located: Located, runner: Runner
             ) -> tuple[_Device, tuple[str, ...]]:
    """The region's device, proven and probed; and the warnings of recording this boot."""
    name = located.region.name
    fs = located.region.filesystem
    if fs is None:
        raise NoFilesystem(name)
    size = check_device(located)
    check_device_unused(machine, located)
    history = read_history(machine)
    warnings: tuple[str, ...] = ()
    if not runner.dry_run:
        try:
            record_boot(machine)
        except MachineError as err:
            warnings = (str(err),)
    probe = probe_device(runner, located.node, size)
    return _Device(located, fs, size, probe, made_this_boot(machine, name, probe),
                   history.current, prior_of(history, located.range)), warnings


def make_region_filesystem(machine: Machine, config: Config, name: str,
                           runner: Runner) -> Outcome:
    """Make (or keep) region ``name``'s filesystem on its device, and record it in the boot
    history; what it did, or why it refused, is an event in the journal."""
    located = locate_region(machine, config, name)
    device = f"{DEV_DIR}/{located.device.name}"
    try:
        outcome = _make(machine, located, runner)
    except Refused as err:
        if not runner.dry_run:
            err.journaled = send_event(machine, filesystem_refused(
                region=name, device=device, reason=str(err)))
        raise
    return outcome if runner.dry_run else outcome.announce(machine, device)


def _make(machine: Machine, located: Located, runner: Runner) -> Outcome:
    device, warnings = _examine(machine, located, runner)
    name = located.region.name
    fstype = device.fs.type.value
    decision = decide(device.fs, device.probe, made_this_boot=device.made_this_boot,
                      prior=device.prior)
    shown = f"{located.device.name} ({located.node})"
    if decision.action is Action.KEEP:
        if not device.made_this_boot and not runner.dry_run:
            uuid = device.probe.fields.get("UUID", "")
            warnings += device.record(machine, uuid, "kept", decision)
        return Outcome(name, shown, decision, warnings=warnings, fstype=fstype,
                       uuid=device.probe.fields.get("UUID", ""))
    release = machine.read_text(machine.osrelease)
    argv = mkfs_argv(device.fs.type, str(located.node), size=device.size,
                     kernel_release=(release or "").strip())
    runner.run(argv)
    if runner.dry_run:
        return Outcome(name, shown, decision, tuple(argv))
    after = probe_device(runner, located.node, device.size)
    if after.fstype != device.fs.type.value:
        raise MachineError(f"{' '.join(argv)} succeeded but blkid finds {after.evidence()}")
    uuid = after.fields.get("UUID") or ""
    write_atomic(machine.filesystems_made / name, uuid + "\n")
    warnings += device.record(machine, uuid, "made", decision)
    return Outcome(name, shown, decision, tuple(argv), warnings, fstype, uuid)
