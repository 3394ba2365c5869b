"""Atomic replacement with a backup (pmemd.machine.atomic), on real files: the new content
or the old, never a mix and never a leftover temporary file — also when the disk is full
(a real tmpfs, too small); a transaction puts every file back as it was."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmemd.machine.atomic import Transaction, remove_durably, write_atomic


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_replaces_the_file_and_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "grub.cfg"
    path.write_text("old\n")
    path.chmod(0o600)
    inode = path.stat().st_ino
    write_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_ino != inode  # renamed over, not written in place
    assert leftovers(tmp_path) == []


def test_write_creates_the_file_and_its_directory_with_the_mode_given(tmp_path: Path) -> None:
    path = tmp_path / "var/lib/pmemd/state.json"
    write_atomic(path, b"{}\n", mode=0o640)
    assert path.read_bytes() == b"{}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    write_atomic(tmp_path / "fresh", "x")
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o644


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem of 64 KiB (root: the tests run as root, as CI does)."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
                   check=True)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def test_a_full_disk_leaves_the_old_file_and_no_temporary(small_tmpfs: Path) -> None:
    path = small_tmpfs / "grub.cfg"
    path.write_text("old\n")
    with pytest.raises(OSError) as failed:
        write_atomic(path, b"x" * (1 << 20))
    assert failed.value.errno == 28  # ENOSPC
    assert path.read_text() == "old\n"
    assert leftovers(small_tmpfs) == []


def test_remove_durably_is_quiet_about_a_missing_file(tmp_path: Path) -> None:
    remove_durably(tmp_path / "none")
    (tmp_path / "one").write_text("1")
    remove_durably(tmp_path / "one")
    assert not (tmp_path / "one").exists()


def test_a_transaction_keeps_a_backup_and_rolls_every_file_back(tmp_path: Path) -> None:
    changed, created, removed = tmp_path / "a.cfg", tmp_path / "b.cfg", tmp_path / "c.cfg"
    changed.write_text("a0\n")
    removed.write_text("c0\n")
    transaction = Transaction()
    transaction.write(changed, "a1\n")
    transaction.write(changed, "a2\n")  # the backup keeps the content before the first write
    transaction.write(created, "b1\n")
    transaction.remove(removed)
    assert (changed.read_text(), created.read_text(), removed.exists()) == ("a2\n", "b1\n",
                                                                             False)
    assert (tmp_path / "a.cfg.pmemd-bak").read_text() == "a0\n"
    assert (tmp_path / "c.cfg.pmemd-bak").read_text() == "c0\n"
    assert not (tmp_path / "b.cfg.pmemd-bak").exists()  # nothing was there to keep
    assert set(transaction.touched) == {changed, created, removed}
    transaction.rollback()
    assert changed.read_text() == "a0\n" and removed.read_text() == "c0\n"
    assert not created.exists()
    assert leftovers(tmp_path) == []


def test_a_transaction_without_backups(tmp_path: Path) -> None:
    path = tmp_path / "pmemd.yaml"
    path.write_text("version: 1\n")
    Transaction(backup_suffix=None).write(path, "version: 1\nregions: []\n")
    assert os.listdir(tmp_path) == ["pmemd.yaml"]
