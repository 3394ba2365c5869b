"""(pure) Make a region's filesystem, keep it — or refuse, with the evidence: the decision,
and the mkfs that makes a filesystem fit for DAX.

``on-boot: recreate`` (emulated pmem is DRAM) makes a fresh filesystem once per boot.
``keep`` decides with the boot history (:mod:`pmemd.core.history`), because what the memory
holds depends on the previous boot:

* the range was pmem then and the device holds the filesystem pmemd made or kept on it
  (same type and UUID) → keep it;
* the range was ordinary RAM then (the region's first boot as pmem, or a boot without its
  ``memmap=`` option) → what it holds is leftover RAM, even if it looks like a filesystem:
  make a new one, and say why;
* the range was pmem with pmemd's filesystem, and no filesystem is recognisable now → the
  content was lost (a power cycle): make a new one, and warn;
* otherwise (no history, or pmem without pmemd's filesystem) → keep a filesystem of the
  configured type, make one on a blank device, and refuse anything else.

Whatever the config says, pmemd never formats a device that is mounted or in use, a
device that is not the region's (address, size and device number must all agree), or —
with ``keep`` — a device that holds another filesystem or data blkid cannot name, unless
the history proves that memory was not pmem on the previous boot.

:func:`decide` is a function of that evidence; :mod:`pmemd.storage.makefs` gathers it
(sysfs, mountinfo, ``blkid -p``, the device's first and last MiB, the boot history), runs
mkfs and records what it did in the history.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pmemd.core.history import FsBasis, Prior, PriorKind
from pmemd.core.model import Filesystem, FsType, OnBoot
from pmemd.errors import Refused

MiB = 1 << 20
SAMPLE = 1 * MiB  # how much of each end of the device must be zero to call it blank
XFS_STRIPE = "su=2m,sw=1"  # 2 MiB stripe unit: PMD-aligned extents for DAX
XFS_SMALL = 1 << 30  # below this, xfs gets an explicit AG count (see mkfs_argv)
XFS_SMALL_AG = 256 * MiB
EXT4_BLOCK = "4096"  # DAX needs the page size; mkfs.ext4 picks 1 KiB on small devices
# A 2 MiB RAID stride and stripe (512 blocks of 4 KiB): mballoc aligns large allocations to
# the stripe, so a file's extents start on 2 MiB and DAX maps them with PMD faults
EXT4_STRIPE = "stride=512,stripe_width=512"
REFLINK_DAX_SINCE = (6, 0)  # older kernels: "DAX and reflink cannot be used together"
BLKID_NOTHING = 2  # blkid -p exit status: no signature found
BLKID_AMBIVALENT = 8  # several signatures: blkid will not say which is real


class Action(StrEnum):
    CREATE = "create"
    KEEP = "keep"


@dataclass(frozen=True)
class Probe:
    """What is on a device: ``blkid -p`` fields, and whether its ends are all zero."""

    fields: Mapping[str, str] = field(default_factory=dict)
    ambivalent: bool = False
    nonzero_at: int | None = None  # first non-zero byte in the sampled ends, if any

    @property
    def fstype(self) -> str | None:
        return self.fields.get("TYPE")

    @property
    def signature(self) -> str | None:
        """The kind of the signature found: a filesystem type, a partition table, …"""
        if self.fstype:
            return self.fstype
        if self.fields.get("PTTYPE"):
            return f"a {self.fields['PTTYPE']} partition table"
        return None

    @property
    def blank(self) -> bool:
        return not self.fields and not self.ambivalent and self.nonzero_at is None

    def evidence(self) -> str:
        if self.ambivalent:
            return "blkid -p: several signatures (ambivalent probing result)"
        if self.fields:
            shown = " ".join(f"{k}={v}" for k, v in self.fields.items()
                             if k not in ("DEVNAME", "SBMAGIC", "SBMAGIC_OFFSET"))
            return f"blkid -p: {shown}"
        if self.nonzero_at is not None:
            return f"blkid -p finds no signature, but byte 0x{self.nonzero_at:x} is not zero"
        return "blkid -p finds no signature and the device's first and last MiB are zero"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    basis: FsBasis  # why, in a word (the boot history records it)

    @property
    def alarming(self) -> bool:
        """The user's kept content is gone: say so loudly."""
        return self.basis in (FsBasis.LOST, FsBasis.UNTRUSTED)


NO_HISTORY = Prior(PriorKind.NONE)


def decide(fs: Filesystem, probe: Probe, *, made_this_boot: bool = False,
           prior: Prior = NO_HISTORY) -> Decision:
    """Create or keep — or raise :class:`Refused` — for a device already proven to be
    the region's and not in use. ``prior``: what the previous boot says about its range."""
    wanted = fs.type.value
    if made_this_boot and probe.fstype == wanted:
        return Decision(Action.KEEP, f"pmemd made this {wanted} filesystem earlier on this boot",
                        FsBasis.KEPT_OWN)
    if fs.on_boot is OnBoot.RECREATE:
        if probe.blank:
            return Decision(Action.CREATE, "the device is blank", FsBasis.RECREATE)
        what = probe.signature or "data"
        return Decision(Action.CREATE, f"on-boot: recreate replaces {what} ({probe.evidence()})",
                        FsBasis.RECREATE)
    if prior.kind is PriorKind.RAM:
        return _after_ram(prior, probe)
    own = prior.own if prior.kind is PriorKind.PMEM else None
    if own is not None:
        if probe.fstype == wanted and probe.fields.get("UUID") == own.uuid:
            return Decision(Action.KEEP, (
                f"keeps the existing {wanted} filesystem (UUID {own.uuid}) pmemd {own.action} "
                f"on {prior.boot}, when its range was pmem"), FsBasis.KEPT_OWN)
        if probe.signature is None and not probe.ambivalent:
            return Decision(Action.CREATE, (
                f"the {own.fstype} filesystem (UUID {own.uuid}) pmemd {own.action} here on "
                f"{prior.boot} is gone ({probe.evidence()}): its content was lost, as "
                "emulated pmem's is at a power cycle; made a new, empty one"), FsBasis.LOST)
    if probe.ambivalent:
        raise Refused(f"on-boot: keep, and the device holds several signatures "
                           f"({probe.evidence()}); pmemd will not guess which is real")
    if probe.fstype == wanted:
        if prior.kind is PriorKind.PMEM:
            recorded = f" (UUID {own.uuid})" if own is not None else ""
            return Decision(Action.KEEP, (
                f"keeps the existing {wanted} filesystem ({probe.evidence()}); pmemd did not "
                f"record it{recorded}, but its range was pmem on {prior.boot}"),
                FsBasis.KEPT_FOUND)
        return Decision(Action.KEEP, f"keeps the existing {wanted} filesystem "
                                     f"({probe.evidence()})", FsBasis.KEPT_FOUND)
    if probe.blank:
        return Decision(Action.CREATE, f"the device is blank ({probe.evidence()})",
                        FsBasis.BLANK)
    held = (f"holds {probe.signature}" if probe.signature
            else "holds data that blkid cannot name")
    why = "" if prior.kind is PriorKind.PMEM else f"; {prior.describe()}"
    raise Refused(f"on-boot: keep, and the device {held}, not {wanted} "
                       f"({probe.evidence()}){why}; to let pmemd make a new {wanted} "
                       "filesystem there, wipe it yourself (wipefs -a DEVICE) or set "
                       "on-boot: recreate")


def _after_ram(prior: Prior, probe: Probe) -> Decision:
    """The range was ordinary RAM on the previous boot: nothing on it is the user's."""
    reason = (f"on-boot: keep, but its range was ordinary RAM, not pmem, on {prior.boot}, so "
              "what the memory holds cannot be user data")
    if probe.ambivalent or probe.signature:
        what = "signatures" if probe.ambivalent else "signature"
        return Decision(Action.CREATE, f"{reason}; the {what} it shows ({probe.evidence()}) "
                                       "cannot be trusted", FsBasis.UNTRUSTED)
    return Decision(Action.CREATE, f"{reason} ({probe.evidence()})", FsBasis.WAS_RAM)


def reflink_with_dax(release: str | None) -> bool:
    """Whether kernel ``release`` mounts a reflink xfs with DAX (unknown: assume not)."""
    match = re.match(r"([0-9]+)\.([0-9]+)", release or "")
    return match is not None and (int(match[1]), int(match[2])) >= REFLINK_DAX_SINCE


def mkfs_argv(fs_type: FsType, device: str, *, size: int, kernel_release: str | None
              ) -> list[str]:
    """mkfs for a DAX filesystem on ``device`` of ``size`` bytes: ext4 with 4 KiB blocks and
    a 2 MiB stripe; xfs with a 2 MiB stripe unit and, on kernels that cannot mix them,
    without reflink. Both allocate large files in 2 MiB-aligned extents (PMD faults)."""
    if fs_type is FsType.EXT4:
        # -F: pmemd decided already (a regular file in tests is not refused either); one -F
        # still leaves mke2fs's own refusal of mounted devices in place.
        return ["mkfs.ext4", "-F", "-q", "-b", EXT4_BLOCK, "-E", EXT4_STRIPE, device]
    data = XFS_STRIPE
    if size < XFS_SMALL:
        # With a stripe unit mkfs.xfs cuts a small device into AGs too small for the 64 MiB
        # log it insists on ("Log size must be at least 64MB"): ask for fewer, larger AGs.
        data += f",agcount={max(2, size // XFS_SMALL_AG)}"
    argv = ["mkfs.xfs", "-f", "-q", "-d", data]
    if not reflink_with_dax(kernel_release):
        argv += ["-m", "reflink=0"]
    return [*argv, device]


def parse_blkid_export(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key:
            fields[key] = value
    return fields
