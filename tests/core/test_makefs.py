"""make-filesystem decisions: when pmemd makes, keeps or refuses, and the mkfs it runs."""

from __future__ import annotations

import pytest

from pmemd.core.makefs import Action, Probe, decide, mkfs_argv, parse_blkid_export, reflink_with_dax
from pmemd.core.model import Filesystem, FsType, OnBoot

XFS_KEEP = Filesystem(FsType.XFS, "/pmem", (), OnBoot.KEEP)
XFS_RECREATE = Filesystem(FsType.XFS, "/pmem", (), OnBoot.RECREATE)
EXT4_KEEP = Filesystem(FsType.EXT4, "/pmem", (), OnBoot.KEEP)

BLANK = Probe()
XFS = Probe({"UUID": "1b2c", "BLOCK_SIZE": "4096", "TYPE": "xfs"})
EXT4 = Probe({"UUID": "9f00", "BLOCK_SIZE": "4096", "TYPE": "ext4", "USAGE": "filesystem"})
DOS = Probe({"PTUUID": "0badcafe", "PTTYPE": "dos"})
JUNK = Probe(nonzero_at=0x1234)
AMBIVALENT = Probe(ambivalent=True)


@pytest.mark.parametrize(("fs", "probe", "action", "words"), [
    (XFS_RECREATE, BLANK, Action.CREATE, "blank"),
    (XFS_RECREATE, XFS, Action.CREATE, "replaces xfs"),
    (XFS_RECREATE, EXT4, Action.CREATE, "replaces ext4"),
    (XFS_RECREATE, JUNK, Action.CREATE, "replaces data"),
    (XFS_RECREATE, AMBIVALENT, Action.CREATE, "replaces data"),
    (XFS_KEEP, XFS, Action.KEEP, "keeps the existing xfs filesystem (blkid -p: UUID=1b2c"),
    (XFS_KEEP, BLANK, Action.CREATE, "blank"),
    (EXT4_KEEP, EXT4, Action.KEEP, "TYPE=ext4"),
])
def test_decisions(fs: Filesystem, probe: Probe, action: Action, words: str) -> None:
    decision = decide(fs, probe)
    assert decision.action is action
    assert words in decision.reason


@pytest.mark.parametrize(("fs", "probe", "evidence"), [
    (XFS_KEEP, EXT4, "holds ext4, not xfs (blkid -p: UUID=9f00 BLOCK_SIZE=4096 TYPE=ext4"),
    (EXT4_KEEP, XFS, "holds xfs, not ext4"),
    (XFS_KEEP, DOS, "holds a dos partition table"),
    (XFS_KEEP, JUNK, "holds data that blkid cannot name, not xfs (blkid -p finds no "
                     "signature, but byte 0x1234 is not zero)"),
    (XFS_KEEP, AMBIVALENT, "several signatures"),
])
def test_keep_refuses_what_is_not_blank_or_its_own_type(fs: Filesystem, probe: Probe,
                                                         evidence: str) -> None:
    with pytest.raises(match="on-boot: keep") as raised:
        decide(fs, probe)
    assert evidence in str(raised.value)


def test_a_filesystem_made_earlier_this_boot_is_not_made_again() -> None:
    decision = decide(XFS_RECREATE, XFS, made_this_boot=True)
    assert decision.action is Action.KEEP
    assert "earlier on this boot" in decision.reason
    # ... unless what is there now is not what pmemd made
    assert decide(XFS_RECREATE, EXT4, made_this_boot=True).action is Action.CREATE


@pytest.mark.parametrize(("release", "ok"), [
    ("6.1.0-27-amd64", True), ("6.0.0", True), ("6.12.9+bpo-amd64", True),
    ("5.19.0-1-amd64", False), ("4.18.0-553.el8_10.x86_64", False), ("", False), (None, False),
    ("garbage", False),
])
def test_reflink_with_dax_by_kernel_release(release: str | None, ok: bool) -> None:
    assert reflink_with_dax(release) is ok


GiB = 1 << 30
MiB = 1 << 20


@pytest.mark.parametrize(("fs_type", "size", "release", "argv"), [
    (FsType.EXT4, 4 * GiB, "6.1.0", ["mkfs.ext4", "-F", "-q", "-b", "4096", "-E",
                                      "stride=512,stripe_width=512", "/dev/pmem0"]),
    (FsType.EXT4, 64 * MiB, "6.1.0", ["mkfs.ext4", "-F", "-q", "-b", "4096", "-E",
                                      "stride=512,stripe_width=512", "/dev/pmem0"]),
    (FsType.XFS, 4 * GiB, "6.1.0", ["mkfs.xfs", "-f", "-q", "-d", "su=2m,sw=1", "/dev/pmem0"]),
    (FsType.XFS, 4 * GiB, "5.14.0-427.el9.x86_64",
     ["mkfs.xfs", "-f", "-q", "-d", "su=2m,sw=1", "-m", "reflink=0", "/dev/pmem0"]),
    (FsType.XFS, 4 * GiB, None,
     ["mkfs.xfs", "-f", "-q", "-d", "su=2m,sw=1", "-m", "reflink=0", "/dev/pmem0"]),
    # small devices: larger AGs, or the 64 MiB log does not fit (xfsprogs 6.1)
    (FsType.XFS, 512 * MiB, "6.1.0",
     ["mkfs.xfs", "-f", "-q", "-d", "su=2m,sw=1,agcount=2", "/dev/pmem0"]),
    (FsType.XFS, 768 * MiB, "6.1.0",
     ["mkfs.xfs", "-f", "-q", "-d", "su=2m,sw=1,agcount=3", "/dev/pmem0"]),
    (FsType.XFS, 1 * GiB, "6.1.0", ["mkfs.xfs", "-f", "-q", "-d", "su=2m,sw=1", "/dev/pmem0"]),
])
def test_mkfs_options_for_dax(fs_type: FsType, size: int, release: str | None,
                              argv: list[str]) -> None:
    assert mkfs_argv(fs_type, "/dev/pmem0", size=size, kernel_release=release) == argv


def test_blkid_export_output() -> None:
    text = "DEVNAME=/dev/pmem0\nUUID=ab-cd\nBLOCK_SIZE=4096\nTYPE=xfs\n\nnot a field\n"
    assert parse_blkid_export(text) == {"DEVNAME": "/dev/pmem0", "UUID": "ab-cd",
                                        "BLOCK_SIZE": "4096", "TYPE": "xfs"}
