"""(pure) Were a DAX mapping's faults served by 2 MiB pages (PMD) or did they fall back to
4 KiB ones? Emulated pmem is as fast as DRAM only with PMD faults, and a filesystem whose
allocation is not 2 MiB aligned falls back silently.

The kernel says it in its ``fs_dax:dax_pmd_fault_done`` tracepoint: one line per PMD fault,
whose last word is the result (``NOPAGE``: a 2 MiB page was mapped; ``FALLBACK``: the fault
is retried with 4 KiB pages, ``fs_dax:dax_pte_fault_done``). :func:`parse_fault` reads one
line of a tracefs ``trace`` file, :func:`decide_pmd` judges a probe's faults, and
:class:`PmdCheck` is what ``pmemd verify-dax`` records for the status to show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

from pmemd.core.devices import DeviceState, RegionDevice
from pmemd.core.makefs import EXT4_BLOCK, EXT4_STRIPE, XFS_STRIPE

PMD_SIZE = 2 << 20
PMD_EVENT = "dax_pmd_fault_done"
PTE_EVENT = "dax_pte_fault_done"
PMD_TRACEPOINT = f"fs_dax:{PMD_EVENT}"
PTE_TRACEPOINT = f"fs_dax:{PTE_EVENT}"
FALLBACK = "FALLBACK"
NOPAGE = "NOPAGE"

# "  python3-812  [001] ..... 93.180: dax_pmd_fault_done: dev 259:0 ino 0xc shared
#  WRITE|KILLABLE|USER address 0x7f... vm_start ... max_pgoff 0x3ff NOPAGE"
_LINE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>[0-9]+)\s+.*?\s(?P<event>dax_p[mt][de]_fault_done):"
    r" dev (?P<dev>[0-9]+:[0-9]+) ino (?P<ino>0x[0-9a-f]+|0) (?P<share>shared|private)"
    r" (?P<flags>\S*) ?address (?P<address>0x[0-9a-f]+)\b.*\s(?P<result>\S+)\s*$")


@dataclass(frozen=True)
class Fault:
    """One ``dax_pmd_fault_done`` or ``dax_pte_fault_done`` line."""

    pid: int
    pmd: bool  # a PMD (2 MiB) fault; False: a PTE (4 KiB) one
    dev: str  # major:minor of the filesystem's device
    inode: int
    address: int
    result: tuple[str, ...]  # VM_FAULT_* names: NOPAGE, FALLBACK, MAJOR, ...

    @property
    def fell_back(self) -> bool:
        return FALLBACK in self.result


def parse_fault(line: str) -> Fault | None:
    """A fault line of a tracefs ``trace`` file, or ``None`` for any other line."""
    match = _LINE.match(line)
    if match is None:
        return None
    return Fault(int(match["pid"]), match["event"] == PMD_EVENT, match["dev"],
                 int(match["ino"], 16), int(match["address"], 16),
                 tuple(match["result"].split("|")))


def parse_faults(text: str) -> tuple[Fault, ...]:
    return tuple(f for f in map(parse_fault, text.splitlines()) if f is not None)


class PmdResult(StrEnum):
    PMD = "pmd"  # every PMD fault of the probe mapped a 2 MiB page
    FALLBACK = "fallback"  # a PMD fault fell back to 4 KiB pages: degraded
    UNCHECKED = "unchecked"  # no tracefs, no tracepoint, no fault seen: a warning only


@dataclass(frozen=True)
class PmdCheck:
    """What verify-dax found for one region's mount, recorded for the status."""

    region: str
    mountpoint: str
    dev: str  # the mounted device (major:minor), so a record of another mount is ignored
    result: PmdResult
    reason: str
    pmd_faults: int = 0
    pte_faults: int = 0

    @property
    def degraded(self) -> bool:
        return self.result is PmdResult.FALLBACK

    def render(self) -> str:
        return json.dumps(asdict(self), sort_keys=True) + "\n"


def parse_check(text: str) -> PmdCheck | None:
    """A record written by :meth:`PmdCheck.render`; ``None`` when it is not one."""
    try:
        data = json.loads(text)
        return PmdCheck(str(data["region"]), str(data["mountpoint"]), str(data["dev"]),
                        PmdResult(data["result"]), str(data["reason"]),
                        int(data.get("pmd_faults", 0)), int(data.get("pte_faults", 0)))
    except (ValueError, KeyError, TypeError):
        return None


def fallback_reason(mountpoint: str, fstype: str) -> str:
    how = MAKE_ALIGNED.get(fstype, "a 2 MiB-aligned allocation")
    return (f"{mountpoint}: a 2 MiB-aligned mapping of a file fell back to 4 KiB faults "
            f"({PMD_TRACEPOINT} {FALLBACK}): the filesystem's allocation is not 2 MiB "
            f"aligned; make it with {how} (as pmemd does)")


MAKE_ALIGNED = {  # the geometry pmemd's own mkfs gives (pmemd.core.makefs.mkfs_argv)
    "ext4": f"mkfs.ext4 -b {EXT4_BLOCK} -E {EXT4_STRIPE}",
    "xfs": f"mkfs.xfs -d {XFS_STRIPE}",
}


def decide_pmd(faults: Iterable[Fault], *, region: str, mountpoint: str, fstype: str,
               dev: str, inode: int, address: int) -> PmdCheck:
    """Judge the faults a probe traced while touching its file (``inode`` on ``dev``) mapped
    at ``address``."""
    mine = [f for f in faults if f.dev == dev and f.inode == inode]
    pmd = [f for f in mine if f.pmd]
    pte = len(mine) - len(pmd)

    def check(result: PmdResult, reason: str) -> PmdCheck:
        return PmdCheck(region, mountpoint, dev, result, reason, len(pmd), pte)

    if address % PMD_SIZE:
        return check(PmdResult.UNCHECKED, f"PMD faults not checked: the probe's mapping at "
                                          f"0x{address:x} is not 2 MiB aligned")
    fell = [f for f in pmd if f.fell_back]
    if fell:
        return check(PmdResult.FALLBACK, fallback_reason(mountpoint, fstype))
    if not pmd:
        return check(PmdResult.UNCHECKED, (
            f"PMD faults not checked: no {PMD_TRACEPOINT} event was traced while the probe "
            f"touched its mapping ({pte} {PTE_TRACEPOINT})"))
    return check(PmdResult.PMD, f"{mountpoint}: mappings are served by 2 MiB faults "
                                f"({len(pmd)} {PMD_TRACEPOINT} {NOPAGE})")


def count_faults(faults: Sequence[Fault]) -> dict[str, int]:
    """PMD faults served, PMD faults that fell back, PTE faults (the benchmark's table)."""
    return {"pmd": sum(f.pmd and not f.fell_back for f in faults),
            "pmd_fallback": sum(f.pmd and f.fell_back for f in faults),
            "pte": sum(not f.pmd for f in faults)}


def apply_pmd_check(status: RegionDevice, checks: Iterable[PmdCheck]) -> RegionDevice:
    """A ready region whose mount verify-dax found falling back to 4 KiB faults is degraded
    (``no-pmd``) with the reason; a record of another mount (device or mountpoint) is
    ignored."""
    if status.state is not DeviceState.READY or status.mount is None:
        return status
    for check in checks:
        if (check.region == status.region and check.degraded
                and check.dev == status.mount.dev
                and check.mountpoint == status.mount.mountpoint):
            return replace(status, state=DeviceState.NO_PMD, reason=check.reason)
    return status
