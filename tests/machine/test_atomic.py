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

from pmemd.boot.apply import BootTransaction
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
    Transaction(backup_suffix=None, original_suffix=None).write(path, "version: 1\nregions: []\n")
    assert os.listdir(tmp_path) == ["pmemd.yaml"]


# --- what a replaced file keeps besides its content ------------------------------------------

LABEL = b"system_u:object_r:boot_t:s0\x00"  # an SELinux context, as the kernel stores it


def _dress(path: Path) -> None:
    """An admin's file: not root's, mode 0640, an ACL, an SELinux label, a user note."""
    os.chown(path, 1234, 5678)
    path.chmod(0o640)
    subprocess.run(["setfacl", "-m", "u:4321:r", str(path)], check=True)
    os.setxattr(path, "security.selinux", LABEL)
    os.setxattr(path, "user.note", b"kept by hand")


def _dress_of(path: Path) -> tuple[int, int, int, str, bytes, bytes]:
    info = path.stat()
    acl = subprocess.run(["getfacl", "-cp", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode), acl,
            os.getxattr(path, "security.selinux"), os.getxattr(path, "user.note"))


def test_a_replaced_file_keeps_owner_mode_acl_selinux_label_and_xattrs(tmp_path: Path) -> None:
    path = tmp_path / "grub"
    path.write_text("old\n")
    _dress(path)
    before = _dress_of(path)
    assert "user:4321:r--" in before[3]
    write_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    assert _dress_of(path) == before
    assert leftovers(tmp_path) == []


def test_backups_keep_the_original_once_and_the_previous_version_each_time(
        tmp_path: Path) -> None:
    path = tmp_path / "grub"
    path.write_text("admin's own\n")
    _dress(path)
    dressed = _dress_of(path)
    Transaction().write(path, "pmemd 1\n")
    Transaction().write(path, "pmemd 2\n")
    Transaction().write(path, "pmemd 3\n")
    assert (tmp_path / "grub.pmemd-orig").read_text() == "admin's own\n"
    assert (tmp_path / "grub.pmemd-bak").read_text() == "pmemd 2\n"
    for name in ("grub", "grub.pmemd-orig", "grub.pmemd-bak"):
        assert _dress_of(tmp_path / name) == dressed, name  # a 0640 file's copies too


def test_a_file_pmemd_creates_gets_no_copies(tmp_path: Path) -> None:
    transaction = Transaction()
    transaction.write(tmp_path / "new.conf", "x\n")
    transaction.write(tmp_path / "state.json", "{}\n", backup=False)
    Transaction().write(tmp_path / "state.json", "{}\n", backup=False)
    assert sorted(os.listdir(tmp_path)) == ["new.conf", "state.json"]


def test_a_symlinked_file_is_written_through_its_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real/cmdline"
    target.write_text("old\n")
    link = tmp_path / "cmdline"
    link.symlink_to("real/cmdline")
    transaction = Transaction()
    transaction.write(link, "new\n")
    assert link.is_symlink() and target.read_text() == "new\n"
    assert (tmp_path / "real/cmdline.pmemd-orig").read_text() == "old\n"
    transaction.rollback()
    assert link.is_symlink() and target.read_text() == "old\n"


def test_rollback_puts_back_the_owner_and_label_a_tool_changed(tmp_path: Path) -> None:
    """A bootloader tool rewrites its file as root with its own mode and no label; the
    rollback restores the admin's file as it was, not as the tool left it."""
    path = tmp_path / "grub.cfg"
    path.write_text("old\n")
    _dress(path)
    before = _dress_of(path)
    transaction = BootTransaction()
    transaction.keep(path)
    path.unlink()
    path.write_text("written by the tool\n")  # root:root 0644, no xattrs
    transaction.rollback()
    assert path.read_text() == "old\n"
    assert _dress_of(path) == before
