"""Make a region's namespace what its ``mode`` asks for — or refuse, with the evidence:
what ``pmemd-mode@0x<start>.service`` runs at boot (``pmemd set-mode NAME``).

The namespace is found by physical address (the nvdimm region whose ``resource`` is the
region's start), never by ``/dev/pmemN`` order; its mode is read from ``ndctl list`` and
``daxctl list`` (JSON) and from sysfs (which info block claims it). When it is already
right nothing runs (a warm reboot: the kernel found the info block itself). Otherwise
``ndctl create-namespace --force --reconfig=…`` rewrites it, and for system-ram ``daxctl
reconfigure-device --mode=system-ram`` hands the memory to the kernel; then udev is let
settle and the result is read back and checked.

Rewriting a namespace destroys what its block device holds: pmemd refuses when it is
mounted or held, or holds a filesystem pmemd did not make (``blkid -p`` and the boot
history, as make-filesystem decides), and refuses to touch memory online as System RAM.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from pmemd.core.devices import DeviceFacts, PmemDevice, dax_device_at, device_at
from pmemd.core.events import namespace_configured, namespace_refused
from pmemd.core.history import prior_of
from pmemd.core.memmap import reserved_ranges
from pmemd.core.model import Config, NamespaceMode, OnBoot, Region
from pmemd.core.namespaces import (
    Claim,
    Current,
    DaxDevice,
    ModeDecision,
    NdctlOutputError,
    Step,
    create_argv,
    decide_mode,
    foreign_filesystem,
    mode_problem,
    namespace_of,
    parse_dax_devices,
    parse_namespaces,
    reconfigure_argv,
    system_ram_problem,
)
from pmemd.core.ranges import MemRange
from pmemd.errors import MachineError, NoDevice, Refused
from pmemd.machine.facts import read_cmdline
from pmemd.machine.history import read_history
from pmemd.machine.journal import send_event
from pmemd.machine.root import DEV_DIR, Machine
from pmemd.machine.runner import Runner
from pmemd.machine.sysfs import namespace_at, read_devices
from pmemd.storage.locate import Located, place_region
from pmemd.storage.makefs import check_device_unused, made_this_boot, probe_device

WAIT_NAMESPACE = 90.0  # seconds for the region's namespace to appear (systemd's device wait)
POLL = 0.5
SETTLE = ["udevadm", "settle", "--timeout=60"]


@dataclass(frozen=True)
class ModeOutcome:
    region: str
    namespace: str
    decision: ModeDecision
    before: str
    after: str = ""
    argvs: tuple[tuple[str, ...], ...] = ()  # what ran (or, dry-run, would run)
    journaled: bool = False

    def message(self) -> str:
        if self.decision.step is Step.NOTHING:
            return f"region {self.region}: {self.decision.reason}; nothing to do"
        if not self.after:
            return f"region {self.region}: would change {self.before}: {self.decision.reason}"
        return f"region {self.region}: {self.namespace} was {self.before}, now {self.after}"


@dataclass(frozen=True)
class _Target:
    region: Region
    range: MemRange


def _target(machine: Machine, config: Config, name: str) -> _Target:
    region, rng = place_region(machine, config, name)
    return _Target(region, rng)


def wait_for_namespace(machine: Machine, target: _Target, *, timeout: float = WAIT_NAMESPACE,
                       sleep: Callable[[float], None] = time.sleep,
                       clock: Callable[[], float] = time.monotonic) -> str:
    """The name of the namespace at the region's start address, waiting for the driver
    to make it (at boot this runs while udev still loads nd_e820); :class:`NoDevice` when
    this boot's command line lacks the region, or when it does not appear in time."""
    rng = target.range
    if rng not in reserved_ranges(read_cmdline(machine)):
        raise NoDevice(f"region {target.region.name!r} ({rng}) has no namespace: this boot's "
                       "command line does not reserve it (reboot to apply it)")
    deadline = clock() + timeout
    while True:
        name = namespace_at(machine, rng)
        if name is not None:
            return name
        if clock() >= deadline:
            raise NoDevice(f"region {target.region.name!r} ({rng}): no nvdimm namespace at "
                           f"0x{rng.start:x} after {timeout:.0f} s (is nd_e820 loaded?)")
        sleep(POLL)


def read_current(machine: Machine, namespace: str, rng: MemRange, runner: Runner
                 ) -> tuple[Current, DeviceFacts]:
    """The namespace's mode as ndctl, daxctl and sysfs show it."""
    listed = runner.run(["ndctl", "list", "-N", "-v", "-n", namespace], mutating=False)
    try:
        state = namespace_of(parse_namespaces(listed.stdout), namespace)
    except NdctlOutputError as err:
        raise MachineError(str(err)) from None
    facts = read_devices(machine)
    block, chardev = device_at(facts, rng), dax_device_at(facts, rng)
    claim = Claim.DAX if chardev is not None else Claim.PFN if block is not None and \
        block.pfn is not None else Claim.NONE
    dax: DaxDevice | None = None
    name = state.chardev or (chardev.name if chardev is not None else None)
    if name is not None:
        shown = runner.run(["daxctl", "list", "-d", name], mutating=False)
        try:
            found = [d for d in parse_dax_devices(shown.stdout) if d.chardev == name]
        except NdctlOutputError as err:
            raise MachineError(str(err)) from None
        dax = found[0] if found else None
    return Current(state, claim, dax), facts


def _check_block(machine: Machine, target: _Target, block: PmemDevice, runner: Runner
                 ) -> None:
    """Refuse to rewrite the namespace under a device that is in use or holds a
    filesystem pmemd did not make."""
    located = Located(target.region, target.range, block, machine.dev_node(block.name))
    check_device_unused(machine, located)
    probe = probe_device(runner, located.node, block.size)
    made = made_this_boot(machine, target.region.name, probe)
    fs = target.region.filesystem
    reason = foreign_filesystem(f"{DEV_DIR}/{block.name}", probe, made_this_boot=made,
                                prior=prior_of(read_history(machine), target.range),
                                kept=fs is not None and fs.on_boot is OnBoot.KEEP)
    if reason is not None:
        raise Refused(reason)


def set_region_mode(machine: Machine, config: Config, name: str, runner: Runner, *,
                    timeout: float = WAIT_NAMESPACE,
                    sleep: Callable[[float], None] = time.sleep) -> ModeOutcome:
    """Make region ``name``'s namespace what its mode asks for; what it did, or why it
    refused, is an event in the journal."""
    target = _target(machine, config, name)
    namespace = wait_for_namespace(machine, target, timeout=timeout, sleep=sleep)
    try:
        outcome = _set(machine, target, namespace, runner)
    except Refused as err:
        if not runner.dry_run:
            err.journaled = send_event(machine, namespace_refused(
                region=name, namespace=namespace, mode=target.region.mode.value,
                reason=str(err)))
        raise
    if runner.dry_run or outcome.decision.step is Step.NOTHING:
        return outcome
    sent = send_event(machine, namespace_configured(
        region=name, namespace=namespace, mode=target.region.mode.value,
        before=outcome.before, after=outcome.after))
    return replace(outcome, journaled=sent)


def _set(machine: Machine, target: _Target, namespace: str, runner: Runner) -> ModeOutcome:
    region, rng = target.region, target.range
    current, facts = read_current(machine, namespace, rng, runner)
    decision = decide_mode(region, current)
    before = current.describe()
    if decision.step is Step.NOTHING:
        return ModeOutcome(region.name, namespace, decision, before, before)
    if decision.step is Step.CREATE:
        problem = system_ram_problem(current)
        if problem is not None:
            raise Refused(problem)
        block = device_at(facts, rng)
        if block is not None:
            _check_block(machine, target, block, runner)
    ran: list[tuple[str, ...]] = []
    if decision.step is Step.CREATE:
        argv = create_argv(region, namespace)
        runner.run(argv)
        ran.append(tuple(argv))
    if runner.dry_run:
        if region.mode is NamespaceMode.SYSTEM_RAM:
            ran.append(tuple(reconfigure_argv(current.namespace.chardev or "daxX.Y")))
        return ModeOutcome(region.name, namespace, decision, before, argvs=tuple(ran))
    if region.mode is NamespaceMode.SYSTEM_RAM:
        made, _ = read_current(machine, namespace, rng, runner)
        chardev = made.namespace.chardev
        if chardev is None:
            raise MachineError(f"{' '.join(ran[-1]) if ran else 'ndctl'} left {namespace} "
                               f"without a dax device ({made.describe()})")
        argv = reconfigure_argv(chardev)
        runner.run(argv)
        ran.append(tuple(argv))
    runner.run(SETTLE, check=False)
    after, _ = read_current(machine, namespace, rng, runner)
    problem = mode_problem(region, after)
    if problem is not None:
        raise MachineError(f"after {'; '.join(' '.join(a) for a in ran)}: {problem}")
    return ModeOutcome(region.name, namespace, decision, before, after.describe(), tuple(ran))
