"""(pure) ``on-boot: keep`` decided with the boot history: tables of what the previous boot
was, what the device holds, and what pmemd does — keep, make, or refuse with the evidence.
Also the history file's format (:mod:`pmemd.fastpath.boot_history`, :mod:`pmemd.core.history`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmemd.core.history import (
    BootHistory,
    BootRecord,
    FsBasis,
    FsRecord,
    Prior,
    PriorKind,
    parse_history,
    prior_of,
    render_fs_line,
)
from pmemd.core.makefs import Action, Probe, decide
from pmemd.core.model import Filesystem, FsType, OnBoot
from pmemd.core.ranges import MemRange
from pmemd.errors import Refused
from pmemd.fastpath import boot_history as bootlog

GiB = 1 << 30
MiB = 1 << 20
RANGE = MemRange.sized(1 * GiB, 512 * MiB)
PREV = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
NOW = "11111111-2222-3333-4444-555555555555"
KEEP_XFS = Filesystem(FsType.XFS, "/pmem", on_boot=OnBoot.KEEP)


def own(fstype: str = "xfs", uuid: str = "u-1") -> FsRecord:
    return FsRecord(PREV, RANGE, fstype, uuid, "data", "made", FsBasis.BLANK, "")


BLANK = Probe()
GARBAGE = Probe(nonzero_at=0)
XFS = Probe({"TYPE": "xfs", "UUID": "u-1"})
XFS_OTHER = Probe({"TYPE": "xfs", "UUID": "u-2"})
EXT4 = Probe({"TYPE": "ext4", "UUID": "e-1"})
PTABLE = Probe({"PTTYPE": "dos"})
SEVERAL = Probe(ambivalent=True)

NONE = Prior(PriorKind.NONE)
UNKNOWN = Prior(PriorKind.UNKNOWN, PREV)
RAM = Prior(PriorKind.RAM, PREV)
PMEM = Prior(PriorKind.PMEM, PREV)
PMEM_OWN = Prior(PriorKind.PMEM, PREV, own())
PMEM_OWN_EXT4 = Prior(PriorKind.PMEM, PREV, own("ext4", "e-1"))

# (prior, probe) -> (action, basis, words the reason must contain)
DECIDED = [
    # No history (pmem set up before pmemd, or a fresh install): as pmemd always did.
    (NONE, BLANK, Action.CREATE, FsBasis.BLANK, ["the device is blank"]),
    (NONE, XFS, Action.KEEP, FsBasis.KEPT_FOUND, ["keeps the existing xfs filesystem"]),
    # The range was ordinary RAM on the previous boot: whatever is there is leftovers.
    (RAM, BLANK, Action.CREATE, FsBasis.WAS_RAM, ["ordinary RAM, not pmem", "journalctl -b "
                                                  "0f1e2d3c4b5a69788796a5b4c3d2e1f0"]),
    (RAM, GARBAGE, Action.CREATE, FsBasis.WAS_RAM, ["cannot be user data",
                                                    "byte 0x0 is not zero"]),
    (RAM, XFS, Action.CREATE, FsBasis.UNTRUSTED, ["the signature it shows (blkid -p: "
                                                  "TYPE=xfs UUID=u-1) cannot be trusted"]),
    (RAM, EXT4, Action.CREATE, FsBasis.UNTRUSTED, ["TYPE=ext4", "cannot be trusted"]),
    (RAM, PTABLE, Action.CREATE, FsBasis.UNTRUSTED, ["PTTYPE=dos", "cannot be trusted"]),
    (RAM, SEVERAL, Action.CREATE, FsBasis.UNTRUSTED, ["the signatures it shows"]),
    # pmem on the previous boot, with pmemd's filesystem recorded on this very range.
    (PMEM_OWN, XFS, Action.KEEP, FsBasis.KEPT_OWN, ["keeps the existing xfs filesystem (UUID "
                                                    "u-1) pmemd made on the previous boot"]),
    (PMEM_OWN, XFS_OTHER, Action.KEEP, FsBasis.KEPT_FOUND, ["did not record it (UUID u-1)",
                                                            "was pmem on the previous boot"]),
    (PMEM_OWN, BLANK, Action.CREATE, FsBasis.LOST, ["filesystem (UUID u-1) pmemd made here",
                                                    "is gone", "power cycle"]),
    (PMEM_OWN, GARBAGE, Action.CREATE, FsBasis.LOST, ["byte 0x0 is not zero", "was lost"]),
    (PMEM_OWN_EXT4, BLANK, Action.CREATE, FsBasis.LOST, ["the ext4 filesystem (UUID e-1)"]),
    # pmem on the previous boot, nothing of pmemd's on it.
    (PMEM, XFS, Action.KEEP, FsBasis.KEPT_FOUND, ["pmemd did not record it, but its range "
                                                  "was pmem"]),
    (PMEM, BLANK, Action.CREATE, FsBasis.BLANK, ["the device is blank"]),
    (UNKNOWN, XFS, Action.KEEP, FsBasis.KEPT_FOUND, ["keeps the existing xfs filesystem"]),
]


@pytest.mark.parametrize(("prior", "probe", "action", "basis", "words"), DECIDED)
def test_keep_decides_with_the_previous_boot(prior: Prior, probe: Probe, action: Action,
                                             basis: FsBasis, words: list[str]) -> None:
    decision = decide(KEEP_XFS, probe, prior=prior)
    assert (decision.action, decision.basis) == (action, basis), decision.reason
    for word in words:
        assert word in decision.reason
    assert decision.alarming == (basis in (FsBasis.LOST, FsBasis.UNTRUSTED))


# (prior, probe) -> words of the refusal; the user's data is never formatted.
REFUSED = [
    (NONE, GARBAGE, ["holds data that blkid cannot name", "byte 0x0 is not zero",
                     "no earlier boot", "wipefs -a"]),
    (NONE, EXT4, ["holds ext4, not xfs", "UUID=e-1"]),
    (NONE, PTABLE, ["holds a dos partition table, not xfs"]),
    (NONE, SEVERAL, ["several signatures"]),
    (UNKNOWN, GARBAGE, ["could not read which ranges were pmem on the previous boot"]),
    (PMEM, GARBAGE, ["holds data that blkid cannot name"]),
    (PMEM, EXT4, ["holds ext4, not xfs"]),
    (PMEM_OWN, EXT4, ["holds ext4, not xfs"]),  # someone made it: the user's
    (PMEM_OWN, PTABLE, ["holds a dos partition table"]),
    (PMEM_OWN, SEVERAL, ["several signatures"]),
    (PMEM_OWN_EXT4, EXT4, ["holds ext4, not xfs"]),  # the config changed type: still data
]


@pytest.mark.parametrize(("prior", "probe", "words"), REFUSED)
def test_keep_refuses_what_may_be_the_users(prior: Prior, probe: Probe,
                                            words: list[str]) -> None:
    with pytest.raises(Refused) as refused:
        decide(KEEP_XFS, probe, prior=prior)
    for word in words:
        assert word in str(refused.value)
    if prior.kind is PriorKind.PMEM:  # the history is not the reason here
        assert "boot history" not in str(refused.value)


@pytest.mark.parametrize("prior", [NONE, RAM, PMEM, PMEM_OWN])
def test_made_earlier_on_this_boot_is_kept_whatever_the_history(prior: Prior) -> None:
    decision = decide(KEEP_XFS, XFS_OTHER, made_this_boot=True, prior=prior)
    assert decision.action is Action.KEEP and "earlier on this boot" in decision.reason


@pytest.mark.parametrize("prior", [NONE, RAM, PMEM_OWN])
def test_recreate_does_not_look_at_the_history(prior: Prior) -> None:
    recreate = Filesystem(FsType.XFS, "/pmem", on_boot=OnBoot.RECREATE)
    decision = decide(recreate, XFS, prior=prior)
    assert (decision.action, decision.basis) == (Action.CREATE, FsBasis.RECREATE)
    assert not decision.alarming


# --- what the previous boot was, for one range ---------------------------------------------


def boot(boot_id: str, *spans: tuple[int, int]) -> BootRecord:
    return BootRecord(boot_id, tuple(MemRange.sized(s, n) for s, n in spans))


AT_1G = (1 * GiB, 512 * MiB)
PRIORS = [
    ("nothing recorded", (), PriorKind.NONE, None),
    ("only this boot", (boot(NOW, AT_1G),), PriorKind.NONE, None),
    ("pmem", (boot(PREV, AT_1G), boot(NOW, AT_1G)), PriorKind.PMEM, PREV),
    ("pmem, larger range", (boot(PREV, (1 * GiB, 1 * GiB)), boot(NOW)), PriorKind.PMEM, PREV),
    ("no pmem at all", (boot(PREV), boot(NOW, AT_1G)), PriorKind.RAM, PREV),
    ("pmem elsewhere", (boot(PREV, (3 * GiB, 512 * MiB)),), PriorKind.RAM, PREV),
    ("half of it pmem", (boot(PREV, (1 * GiB, 256 * MiB)),), PriorKind.RAM, PREV),
    ("unreadable then", (BootRecord(PREV, None), boot(NOW, AT_1G)), PriorKind.UNKNOWN, PREV),
    ("the latest other boot decides", (boot("a", AT_1G), boot(PREV), boot(NOW, AT_1G)),
     PriorKind.RAM, PREV),
    ("not recorded yet on this boot", (boot("a"), boot(PREV, AT_1G)), PriorKind.PMEM, PREV),
]


@pytest.mark.parametrize(("case", "boots", "kind", "boot_id"), PRIORS,
                         ids=[p[0] for p in PRIORS])
def test_prior_of_a_range(case: str, boots: tuple[BootRecord, ...], kind: PriorKind,
                          boot_id: str | None) -> None:
    prior = prior_of(BootHistory(NOW, boots), RANGE)
    assert (prior.kind, prior.boot_id) == (kind, boot_id)


def test_only_pmemds_filesystem_on_exactly_this_range_that_boot_is_its_own() -> None:
    elsewhere = FsRecord(PREV, MemRange.sized(1 * GiB, 256 * MiB), "xfs", "u-9", "data",
                         "made", FsBasis.BLANK, "")
    older = FsRecord("a", RANGE, "xfs", "u-8", "data", "made", FsBasis.BLANK, "")
    history = BootHistory(NOW, (boot("a", AT_1G), boot(PREV, AT_1G)), (older, elsewhere))
    assert prior_of(history, RANGE) == Prior(PriorKind.PMEM, PREV, None)
    history = BootHistory(NOW, history.boots, (older, elsewhere, own()))
    assert prior_of(history, RANGE).own == own()


def test_an_unusable_history_is_none_and_says_why() -> None:
    prior = prior_of(BootHistory(NOW, problem="boot-history:3: not a history line"), RANGE)
    assert prior.kind is PriorKind.NONE
    assert "unusable (boot-history:3: not a history line)" in prior.describe()


# --- the file -------------------------------------------------------------------------------

TEXT = f"""\
pmemd-boot-history 1
boot {PREV} 0x40000000+0x20000000,0x100000000+0x8000000
fs {PREV} 0x40000000+0x20000000 xfs u-1 data made was-ram {b"made it".hex()}
boot {NOW} ?
boot x -
"""


def test_the_history_file_parses_into_boots_and_filesystems() -> None:
    history = parse_history(TEXT, NOW)
    assert history.boots == (
        BootRecord(PREV, (RANGE, MemRange.sized(4 * GiB, 128 * MiB))),
        BootRecord(NOW, None), BootRecord("x", ()))
    assert history.filesystems == (FsRecord(PREV, RANGE, "xfs", "u-1", "data", "made",
                                            FsBasis.WAS_RAM, "made it"),)
    assert render_fs_line(history.filesystems[0]) == TEXT.splitlines()[2]
    assert history.previous == BootRecord("x", ())


@pytest.mark.parametrize(("text", "line", "words"), [
    ("", 1, "does not start with"),
    ("pmemd-boot-history 2\n", 1, "does not start with"),
    ("pmemd-boot-history 1\nboot a\n", 2, "not a history line"),
    ("pmemd-boot-history 1\nboot a 0x1+0x0\n", 2, "not a range"),
    ("pmemd-boot-history 1\nboot a - \n", 2, "not a history line"),
    ("pmemd-boot-history 1\nboot a -\nboot b 1G\n", 3, "not a range: '1G'"),
    ("pmemd-boot-history 1\nfs a 0x1+0x1 xfs u d made lost zz\n", 2, "not a filesystem record"),
    ("pmemd-boot-history 1\nfs a 0x1+0x1 xfs u d made fine 00\n", 2, "not a filesystem record"),
    ("pmemd-boot-history 1\nfs a 0x1+0x1 xfs u d wiped lost 00\n", 2, "unknown action"),
])
def test_a_malformed_history_is_located(text: str, line: int, words: str) -> None:
    with pytest.raises(bootlog.HistoryFormatError) as failed:
        parse_history(text, NOW)
    assert failed.value.line == line and words in str(failed.value)


def test_a_boot_is_added_once_and_the_oldest_are_forgotten() -> None:
    lines: list[str] = []
    for number in range(bootlog.KEPT_BOOTS + 2):
        lines = bootlog.with_boot(lines, f"b{number}", [(1 * GiB, 1 * GiB + 512 * MiB)])
        lines.append(f"fs b{number} 0x40000000+0x20000000 xfs u d made blank 00")
    assert bootlog.with_boot(lines, "b3", []) == lines  # b3 has its line: unchanged
    assert bootlog.boot_ids(lines) == [f"b{n}" for n in range(2, bootlog.KEPT_BOOTS + 2)]
    assert not any(line.split()[1] in ("b0", "b1") for line in lines)
    history = parse_history(bootlog.render(lines), None)
    assert len(history.filesystems) == bootlog.KEPT_BOOTS


IOMEM = """\
00000000-00000fff : Reserved
00100000-3fffffff : System RAM
  0b000000-0c002fff : Kernel code
40000000-5fffffff : Persistent Memory (legacy)
  40000000-5fffffff : namespace0.0
60000000-6fffffff : Persistent Memory (legacy)
70000000-7ffdffff : System RAM
"""


def nd_region(directory: Path, name: str, start: int, size: int) -> None:
    (directory / name).mkdir(parents=True)
    (directory / name / "resource").write_text(f"0x{start:x}\n")
    (directory / name / "size").write_text(f"{size}\n")


@pytest.mark.parametrize(("iomem", "regions", "expected"), [
    (IOMEM, [], [(0x40000000, 0x70000000)]),  # adjacent ranges merged
    (IOMEM, [("region0", 0x40000000, 512 * MiB)], [(0x40000000, 0x70000000)]),
    (IOMEM.replace("Persistent Memory (legacy)", "System RAM"), [], []),
    # iomem read without root: every address is 0; the nvdimm bus still says
    ("00000000-00000000 : System RAM\n00000000-00000000 : Persistent Memory (legacy)\n",
     [("region0", 0x40000000, 512 * MiB)], [(0x40000000, 0x60000000)]),
    ("00000000-00000000 : Persistent Memory (legacy)\n", None, None),  # neither: unknown
    (None, [("region1", 0x100000000, 256 * MiB)], [(0x100000000, 0x110000000)]),
    (None, None, None),
])
def test_this_boots_pmem_ranges_from_iomem_and_the_nvdimm_bus(
        tmp_path: Path, iomem: str | None, regions: list[tuple[str, int, int]] | None,
        expected: list[tuple[int, int]] | None) -> None:
    nd = tmp_path / "nd"
    if regions is not None:
        nd.mkdir()
        (nd / "ndbus0").mkdir()
        (nd / "namespace0.0").mkdir()
        for name, start, size in regions:
            nd_region(nd, name, start, size)
    if iomem is not None:
        (tmp_path / "iomem").write_text(iomem)
    assert bootlog.read_pmem_ranges(str(tmp_path / "iomem"), str(nd)) == expected
    assert bootlog.render_ranges(expected) == (
        "?" if expected is None else ",".join(bootlog.render_span(s) for s in expected) or "-")
