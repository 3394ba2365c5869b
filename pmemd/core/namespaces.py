"""(pure) A region's namespace mode: what ``ndctl list`` and ``daxctl list`` say (JSON →
typed), and what to do to make it what the region asks for — nothing, ``ndctl
create-namespace``, ``daxctl reconfigure-device`` — and whether the result is right.

The commands' JSON is ndctl/daxctl's, as captured in a Debian 12 guest
(tests/fixtures/ndctl/): a single object when one thing is listed, an array otherwise.
A memmap= namespace as the kernel makes it already reads ``"mode":"fsdax","map":"mem"``
(its pages are mapped in RAM) without any info block, and ``ndctl create-namespace -m fsdax
--map=mem`` leaves it so: fsdax/mem is raw. ``--map=dev`` writes a pfn info block (the block
device then hangs off ``pfnX.Y``), devdax a dax one (``daxX.Y``): which info block claims
the namespace is read from sysfs (:class:`Claim`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pmemd.core.history import Prior, PriorKind
from pmemd.core.makefs import Probe
from pmemd.core.model import NamespaceMode, PageMap, Region
from pmemd.core.sizes import format_bytes

SYSTEM_RAM = "system-ram"  # daxctl's mode of a device handed to the page allocator
DEVDAX = "devdax"


class NdctlOutputError(ValueError):
    """ndctl or daxctl printed something pmemd cannot read as what it asked for."""


class Claim(StrEnum):
    """What claims a namespace in sysfs (its block device's or dax device's parent)."""

    NONE = "none"  # the namespace itself: the kernel's memmap namespace, no info block
    PFN = "pfn"  # an fsdax info block (pfnX.Y)
    DAX = "dax"  # a devdax info block (daxX.Y)
    BTT = "btt"  # sector mode


@dataclass(frozen=True)
class NamespaceState:
    """One namespace as ``ndctl list -N -v`` shows it."""

    dev: str  # namespace0.0
    mode: str  # ndctl's word: fsdax | devdax | raw | sector
    map: str | None = None  # mem | dev
    size: int | None = None  # usable bytes (after the info block)
    align: int | None = None
    blockdev: str | None = None  # pmem0 (fsdax, raw)
    chardev: str | None = None  # dax0.0 (devdax)


@dataclass(frozen=True)
class DaxDevice:
    """One device dax as ``daxctl list`` shows it."""

    chardev: str  # dax0.0
    mode: str  # devdax | system-ram
    size: int | None = None
    align: int | None = None
    online_memblocks: int | None = None  # system-ram only
    total_memblocks: int | None = None


def _load(text: str, what: str) -> list[Mapping[str, object]]:
    """The JSON of ``what`` as a list of objects (ndctl prints one object unwrapped, and
    nothing at all when nothing matches)."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except ValueError as err:
        raise NdctlOutputError(f"{what} printed no JSON ({err}): {text[:200]!r}") from None
    items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) for item in items):
        raise NdctlOutputError(f"{what} printed JSON that is no list of objects: "
                               f"{text[:200]!r}")
    return items


def _str(item: Mapping[str, object], key: str, what: str, *, required: bool = False
         ) -> str | None:
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise NdctlOutputError(f"{what}: {key!r} is {value!r}, not a name")
    return value


def _int(item: Mapping[str, object], key: str, what: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise NdctlOutputError(f"{what}: {key!r} is {value!r}, not a size")
    return value


def parse_namespaces(text: str) -> tuple[NamespaceState, ...]:
    """``ndctl list -N [-v] [-n NS]`` output."""
    what = "ndctl list -N"
    states = []
    for item in _load(text, what):
        dev = _str(item, "dev", what, required=True)
        mode = _str(item, "mode", what, required=True)
        assert dev is not None and mode is not None
        chardev = _str(item, "chardev", what)
        align = _int(item, "align", what)
        region = item.get("daxregion")
        if isinstance(region, dict):  # -v: the devdax device under its dax region
            devices = region.get("devices")
            first = devices[0] if isinstance(devices, list) and devices else None
            if isinstance(first, dict):
                chardev = chardev or _str(first, "chardev", what)
            align = align if align is not None else _int(region, "align", what)
        states.append(NamespaceState(dev, mode, _str(item, "map", what),
                                     _int(item, "size", what), align,
                                     _str(item, "blockdev", what), chardev))
    return tuple(states)


def parse_dax_devices(text: str) -> tuple[DaxDevice, ...]:
    """``daxctl list [-d DEV]`` output."""
    what = "daxctl list"
    devices = []
    for item in _load(text, what):
        chardev = _str(item, "chardev", what, required=True)
        assert chardev is not None
        devices.append(DaxDevice(chardev, _str(item, "mode", what) or DEVDAX,
                                 _int(item, "size", what), _int(item, "align", what),
                                 _int(item, "online_memblocks", what),
                                 _int(item, "total_memblocks", what)))
    return tuple(devices)


@dataclass(frozen=True)
class Current:
    """A region's namespace now: ndctl's view, what claims it in sysfs, and its dax device
    (devdax: daxctl's view)."""

    namespace: NamespaceState
    claim: Claim
    dax: DaxDevice | None = None

    def describe(self) -> str:
        ns = self.namespace
        if self.claim is Claim.NONE and ns.mode == NamespaceMode.FSDAX.value:
            return f"{ns.dev} as the kernel made it (raw: no info block, {ns.blockdev})"
        parts = [f"{ns.dev} in {ns.mode} mode"]
        if ns.map:
            parts.append(f"map={ns.map}")
        if ns.align and ns.mode == DEVDAX:
            parts.append(f"align={format_bytes(ns.align)}")
        device = ns.blockdev or ns.chardev
        if self.dax is not None and self.dax.mode == SYSTEM_RAM:
            device = f"{self.dax.chardev}, system-ram"
        return " ".join(parts) + (f" ({device})" if device else "")


def mode_problem(region: Region, current: Current) -> str | None:
    """Why ``current`` is not what ``region`` asks for, or ``None`` when it is."""
    ns, wanted = current.namespace, region.mode
    if wanted is NamespaceMode.RAW:
        if current.claim is Claim.NONE:
            return None
        return f"{ns.dev} is claimed by an info block ({current.claim.value}), not raw"
    if wanted is NamespaceMode.FSDAX:
        # map=mem: ndctl writes no info block on a memmap namespace (seen: create-namespace
        # -m fsdax --map=mem leaves it as the kernel made it, which ndctl already calls
        # fsdax/mem); map=dev: a pfn info block with the page array on the namespace.
        if ns.mode != "fsdax" or ns.map != region.map.value:
            return f"{ns.dev} is not fsdax with map={region.map.value} ({current.describe()})"
        return None
    if ns.mode != DEVDAX or current.claim is not Claim.DAX:
        return f"{ns.dev} is not in devdax mode ({current.describe()})"
    if ns.map != region.map.value:
        return f"{ns.dev} keeps its pages in map={ns.map}, the region asks for " \
               f"map={region.map.value}"
    if ns.align is not None and ns.align != region.align:
        return f"{ns.dev} is aligned to {format_bytes(ns.align)}, the region asks for " \
               f"{format_bytes(region.align)}"
    dax_mode = current.dax.mode if current.dax is not None else None
    want_dax = SYSTEM_RAM if wanted is NamespaceMode.SYSTEM_RAM else DEVDAX
    if dax_mode != want_dax:
        return f"{ns.chardev or 'its dax device'} is in {dax_mode or 'no'} mode, the " \
               f"region asks for {want_dax}"
    return None


def create_argv(region: Region, namespace: str) -> list[str]:
    """``ndctl create-namespace`` that rewrites ``namespace`` in the region's mode (the
    namespace is reconfigured in place: ``-f -e``)."""
    argv = ["ndctl", "create-namespace", "--force", f"--reconfig={namespace}"]
    if region.mode is NamespaceMode.RAW:
        return [*argv, "--mode=raw"]
    if region.mode is NamespaceMode.FSDAX:
        return [*argv, "--mode=fsdax", f"--map={region.map.value}"]
    return [*argv, "--mode=devdax", f"--map={region.map.value}", f"--align={region.align}"]


def reconfigure_argv(chardev: str) -> list[str]:
    """``daxctl reconfigure-device`` that hands a devdax device's memory to the kernel as
    System RAM (onlined by daxctl itself)."""
    return ["daxctl", "reconfigure-device", "--mode=system-ram", chardev]


class Step(StrEnum):
    NOTHING = "nothing"
    CREATE = "create"  # ndctl create-namespace (then, for system-ram, daxctl)
    RECONFIGURE = "reconfigure"  # daxctl only: the devdax namespace is right already


@dataclass(frozen=True)
class ModeDecision:
    step: Step
    reason: str


def decide_mode(region: Region, current: Current) -> ModeDecision:
    """What to do about ``current`` for ``region``; refusals (a filesystem that is not
    pmemd's, a device in use) are decided apart, from the device's evidence."""
    problem = mode_problem(region, current)
    if problem is None:
        return ModeDecision(Step.NOTHING, f"{current.describe()} is what the region asks for")
    if region.mode is NamespaceMode.SYSTEM_RAM and current.claim is Claim.DAX and \
            current.namespace.map == region.map.value and \
            current.namespace.align in (None, region.align) and \
            (current.dax is None or current.dax.mode == DEVDAX):
        return ModeDecision(Step.RECONFIGURE, problem)
    return ModeDecision(Step.CREATE, problem)


def system_ram_problem(current: Current) -> str | None:
    """A device already in system-ram mode cannot be rewritten: its memory is in use."""
    if current.dax is not None and current.dax.mode == SYSTEM_RAM:
        return (f"{current.dax.chardev} is online as System RAM; its memory is in use by the "
                "kernel, so pmemd does not rewrite the namespace (change the mode back in the "
                "config and reboot without the region's memory in use)")
    return None


def planned_argvs(region: Region, current: Current, decision: ModeDecision,
                  chardev: str | None) -> list[list[str]]:
    """The commands of ``decision``; ``chardev``: the dax device after create (system-ram
    needs its name, known only once ndctl made it)."""
    argvs: list[list[str]] = []
    if decision.step is Step.CREATE:
        argvs.append(create_argv(region, current.namespace.dev))
    if region.mode is NamespaceMode.SYSTEM_RAM and decision.step is not Step.NOTHING and \
            chardev:
        argvs.append(reconfigure_argv(chardev))
    return argvs


def namespace_of(states: Sequence[NamespaceState], name: str) -> NamespaceState:
    found = [s for s in states if s.dev == name]
    if len(found) != 1:
        raise NdctlOutputError(f"ndctl list -N -n {name} does not list {name} (found "
                               f"{', '.join(s.dev for s in states) or 'nothing'})")
    return found[0]


def page_map(text: str | None) -> PageMap | None:
    return PageMap(text) if text in {m.value for m in PageMap} else None


def foreign_filesystem(device: str, probe: Probe, *, made_this_boot: bool, prior: Prior,
                       kept: bool = False) -> str | None:
    """Why rewriting the namespace under ``device`` would destroy a filesystem pmemd did not
    make (the reason to refuse), or ``None``. pmemd's own are the one it made earlier on
    this boot and the one the boot history records on this range on the previous boot; on
    a range that was ordinary RAM on the previous boot, a signature is leftover memory.
    ``kept``: the region's filesystem is ``on-boot: keep``, so pmemd's own filesystem from
    the previous boot holds data the config asks to keep: refused too."""
    if probe.signature is None and not probe.ambivalent:
        return None  # no filesystem (data blkid cannot name is no filesystem either)
    if made_this_boot or prior.kind is PriorKind.RAM:
        return None
    own = prior.own if prior.kind is PriorKind.PMEM else None
    if own is not None and probe.fstype == own.fstype and probe.fields.get("UUID") == own.uuid:
        if not kept:
            return None
        return (f"{device} holds the {own.fstype} filesystem (UUID {own.uuid}) pmemd kept for "
                f"region {own.region!r}, which is 'on-boot: keep'; a new mode rewrites the "
                "namespace and would destroy it. Copy what it holds elsewhere, then set "
                "'on-boot: recreate' for this change (or wipe it: wipefs -a)")
    why = "" if prior.kind is PriorKind.PMEM else f"; {prior.describe()}"
    return (f"{device} holds {probe.signature or 'several signatures'} ({probe.evidence()}), "
            f"which pmemd did not make{why}; rewriting the namespace would destroy it")
