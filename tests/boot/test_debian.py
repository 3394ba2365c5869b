"""Debian 12 with the real update-grub (and the real kernel-install), in a real Debian root
on a loop-mounted ext4 partition: pmemd's drop-in, grub.cfg read back, ownership,
idempotence, dry run, failures and a kill in the middle of a write."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmemd.boot.grubcfg import parse_grub_cfg, resolve_default
from pmemd.boot.reconcile import Outcome, reconcile
from pmemd.core.plan import PlanState
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from tests.boot.conftest import (
    BACKUPS,
    assert_same_files,
    config_text,
    killed_at_rename,
    snapshot,
    write_config,
)
from tests.boot.debianroot import DebianRoot, run
from tests.conftest import run_pmemd

M1, M2 = "memmap=4G!12G", "memmap=2G!10G"
FOREIGN = "memmap=64M!0x7c000000"
DROPIN = "/etc/default/grub.d/pmemd.cfg"
Debian = tuple[DebianRoot, Path]


def reconcile_in(root: DebianRoot, runner: Runner | None = None, **kwargs: object) -> Outcome:
    return reconcile(Machine(root.root), runner or Runner(), **kwargs)  # type: ignore[arg-type]


def update_grub_argv(root: DebianRoot) -> tuple[str, ...]:
    return ("chroot", str(root.root), "/usr/sbin/update-grub")


def linux_lines(root: DebianRoot) -> list[str]:
    return [line.strip() for line in root.file("/boot/grub/grub.cfg").read_text().splitlines()
            if line.strip().startswith("linux\t")]


def default_args(root: DebianRoot) -> list[str]:
    entry, _ = resolve_default(parse_grub_cfg(root.file("/boot/grub/grub.cfg").read_text()), {})
    assert entry is not None and entry.cmdline is not None
    return [a.text for a in entry.cmdline.args]


def boot_files(root: DebianRoot) -> dict[str, bytes]:
    """What update-grub and pmemd may change (backups aside)."""
    files = {}
    for directory in ("/etc/default", "/boot/grub"):
        for name, content in snapshot(root.file(directory)).items():
            if not name.endswith(BACKUPS):
                files[f"{directory}/{name}"] = content
    return files


def test_add_region_through_the_real_update_grub(debian: Debian) -> None:
    root, _ = debian
    write_config(root.root, config_text(("data", "4G", "12G"), ("cache", "2G", "10G")))
    admins = root.file("/etc/default/grub").read_bytes()
    runner = Runner()
    outcome = reconcile_in(root, runner)
    assert runner.recorded == [update_grub_argv(root)]
    assert outcome.state is PlanState.REBOOT_REQUIRED
    assert root.file(DROPIN).read_text().splitlines()[-1] == \
        f'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX {M2} {M1}"'
    assert root.file("/etc/default/grub").read_bytes() == admins  # never edited
    assert default_args(root)[1:] == ["ro", M2, M1, "quiet"]
    # GRUB_CMDLINE_LINUX reaches every entry, recovery ones included
    assert all(f"{M2} {M1}" in line for line in linux_lines(root))
    assert outcome.owned == (M2, M1)


def test_second_run_runs_no_tool_and_changes_nothing(debian: Debian) -> None:
    root, _ = debian
    write_config(root.root, config_text(("data", "4G", "12G")))
    reconcile_in(root)
    before = snapshot(root.file("/etc")) | snapshot(root.file("/boot")) | snapshot(
        root.file("/var/lib/pmemd"))
    runner = Runner()
    outcome = reconcile_in(root, runner)
    assert runner.recorded == []
    assert not outcome.applied and outcome.state is PlanState.REBOOT_REQUIRED
    assert (snapshot(root.file("/etc")) | snapshot(root.file("/boot")) |
            snapshot(root.file("/var/lib/pmemd"))) == before


def test_resize_then_remove_gives_back_the_original_grub_cfg(debian: Debian) -> None:
    root, _ = debian
    original = boot_files(root)
    write_config(root.root, config_text(("data", "4G", "12G")))
    reconcile_in(root)
    write_config(root.root, config_text(("data", "2G", "12G")))
    outcome = reconcile_in(root)
    assert [(c.action.value, c.argument) for c in outcome.before.changes] == [
        ("add", "memmap=2G!12G"), ("remove", M1)]
    assert "memmap=2G!12G" in default_args(root) and M1 not in default_args(root)
    write_config(root.root, config_text())
    outcome = reconcile_in(root)
    assert not root.file(DROPIN).exists()
    assert_same_files(boot_files(root), original)
    assert outcome.owned == ()


def test_admins_options_and_foreign_memmap_are_left_alone(debian: Debian) -> None:
    root, _ = debian
    grub = root.file("/etc/default/grub")
    grub.write_text(grub.read_text().replace('GRUB_CMDLINE_LINUX=""',
                                             f'GRUB_CMDLINE_LINUX="console=ttyS0 {FOREIGN}"'))
    root.update_grub()
    write_config(root.root, config_text(("data", "4G", "12G")))
    outcome = reconcile_in(root)
    assert [f.argument for f in outcome.before.foreign] == [FOREIGN]
    assert default_args(root)[1:] == ["ro", "console=ttyS0", FOREIGN, M1, "quiet"]
    write_config(root.root, config_text())
    reconcile_in(root)
    assert default_args(root)[1:] == ["ro", "console=ttyS0", FOREIGN, "quiet"]


def test_conflicting_foreign_memmap_is_an_invalid_config_and_nothing_is_written(
        debian: Debian) -> None:
    root, _ = debian
    grub = root.file("/etc/default/grub")
    grub.write_text(grub.read_text().replace('GRUB_CMDLINE_LINUX=""',
                                             'GRUB_CMDLINE_LINUX="memmap=1G!12G"'))
    root.update_grub()
    write_config(root.root, config_text(("data", "4G", "12G")))
    before = boot_files(root)
    done = run_pmemd("reconcile", "--root", str(root.root))
    assert done.returncode == 3
    assert "memmap=1G!12G on the command line (not written by pmemd) overlaps region 'data'" \
        in done.stderr
    assert boot_files(root) == before and not root.file("/var/lib/pmemd/state.json").exists()


def test_invalid_config_writes_nothing_and_exits_3(debian: Debian) -> None:
    root, _ = debian
    config = write_config(root.root, config_text(("data", "4G", "12G")).replace("4G", "4Q"))
    before = boot_files(root)
    done = run_pmemd("reconcile", "--root", str(root.root))
    assert done.returncode == 3 and done.stdout == ""
    assert f"{config}:8:12: regions[0].size: '4Q' is not a size" in done.stderr
    assert boot_files(root) == before
    # Only the boot history (this boot, recorded whatever the config says: see
    # pmemd.machine.history)
    assert not root.file("/var/lib/pmemd").exists() or {
        p.name for p in root.file("/var/lib/pmemd").iterdir()} <= {"boot-history"}


def test_dry_run_prints_the_exact_file_and_command(debian: Debian) -> None:
    root, _ = debian
    write_config(root.root, config_text(("data", "4G", "12G")))
    before = boot_files(root)
    done = run_pmemd("reconcile", "--dry-run", "--root", str(root.root))
    assert done.returncode == 4, done.stderr
    dropin = root.file(DROPIN)
    assert f"Would write {dropin}:" in done.stdout
    assert f"    --- {dropin} (absent)" in done.stdout
    assert f'    +GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX {M1}"' in done.stdout
    assert f"Would run: chroot {root.root} /usr/sbin/update-grub" in done.stdout
    assert boot_files(root) == before and not dropin.exists()


def test_update_grub_failure_restores_the_files_and_shows_its_output(debian: Debian) -> None:
    root, _ = debian
    script = root.file("/etc/grub.d/45_broken")
    script.write_text("#!/bin/sh\necho '45_broken: /etc/grub.d/entries.conf: "
                      "No such file or directory' >&2\nexit 1\n")
    script.chmod(0o755)
    write_config(root.root, config_text(("data", "4G", "12G")))
    before = boot_files(root)
    done = run_pmemd("reconcile", "--root", str(root.root))
    assert done.returncode == 1
    assert "/usr/sbin/update-grub failed with exit status 1" in done.stderr
    assert "45_broken: /etc/grub.d/entries.conf: No such file or directory" in done.stderr
    assert "pmemd put the previous bootloader files back" in done.stderr
    after = boot_files(root)
    after.pop("/boot/grub/grub.cfg.new", None)  # grub-mkconfig's own leftover
    assert after == before and not root.file(DROPIN).exists()


def test_default_entry_without_the_options_is_rolled_back(debian: Debian) -> None:
    """An admin's later drop-in resets GRUB_CMDLINE_LINUX: update-grub succeeds, but the
    default entry would boot without the options. pmemd checks, says so, restores."""
    root, _ = debian
    root.file("/etc/default/grub.d/zz-admin.cfg").write_text('GRUB_CMDLINE_LINUX=""\n')
    write_config(root.root, config_text(("data", "4G", "12G")))
    before = boot_files(root)
    done = run_pmemd("reconcile", "--root", str(root.root))
    assert done.returncode == 1
    assert "after writing, the default entry (" in done.stderr
    assert f"entry 'Debian GNU/Linux' (default '0')) lacks {M1}" in done.stderr
    assert boot_files(root) == before


def test_killed_between_write_and_rename_leaves_a_valid_config(debian: Debian) -> None:
    root, _ = debian
    write_config(root.root, config_text(("data", "4G", "12G")))
    dropin = root.file(DROPIN)
    before = boot_files(root)
    killed_at_rename(dropin, "reconcile", "--root", str(root.root))
    assert not dropin.exists()
    leftovers = list(dropin.parent.glob(".pmemd.cfg.*.tmp"))
    assert len(leftovers) == 1 and M1 in leftovers[0].read_text()  # written, not renamed
    assert {k: v for k, v in boot_files(root).items() if ".tmp" not in k} == before
    # The configuration is valid: the real update-grub reads it and boots the old way.
    root.update_grub()
    assert M1 not in default_args(root)
    # The next reconcile finishes the job and sweeps the leftover.
    outcome = reconcile_in(root)
    assert outcome.applied and M1 in default_args(root)
    assert not list(dropin.parent.glob(".pmemd.cfg.*.tmp"))


# --- the real kernel-install -------------------------------------------------------------------


@pytest.fixture
def esp(debian: Debian) -> Iterator[tuple[DebianRoot, Path]]:
    """systemd-boot's layout: the ESP (a tmpfs) at /boot/efi, entries by kernel-install."""
    root, _ = debian
    mountpoint = root.file("/boot/efi")
    mountpoint.mkdir(exist_ok=True)
    run(["mount", "-t", "tmpfs", "tmpfs", mountpoint])
    (mountpoint / "loader/entries").mkdir(parents=True)
    (mountpoint / "loader/loader.conf").write_text("#timeout 3\n#console-mode keep\n")
    root.file("/etc/kernel").mkdir(exist_ok=True)
    root.file("/etc/kernel/install.conf").write_text("layout=bls\n")
    root.file("/etc/kernel/cmdline").write_text(f"root=UUID={root.uuid} ro quiet\n")
    for release in ("6.1.0-26-amd64", "6.1.0-27-amd64"):
        root.chroot("kernel-install", "add", release, f"/boot/vmlinuz-{release}")
    yield root, mountpoint
    run(["umount", "-l", mountpoint], check=False)
    shutil.rmtree(root.file("/etc/kernel"), ignore_errors=True)


def test_kernels_installed_later_get_the_options(esp: tuple[DebianRoot, Path]) -> None:
    root, mountpoint = esp
    # update-grub fits this root too, and its /sys (the host's) shows a BIOS boot: name it
    write_config(root.root, config_text(("data", "4G", "12G"), bootloader="kernel-install"))
    outcome = reconcile_in(root)
    assert outcome.backend.kind.value == "kernel-install" and outcome.applied
    entries = mountpoint / "loader/entries"
    assert all(M1 in p.read_text() for p in entries.glob("*.conf"))
    root.file("/boot/vmlinuz-6.1.0-28-amd64").write_bytes(b"")
    root.chroot("kernel-install", "add", "6.1.0-28-amd64", "/boot/vmlinuz-6.1.0-28-amd64")
    new = next(entries.glob("*6.1.0-28-amd64.conf")).read_text()
    assert f"ro quiet {M1}" in new  # from /etc/kernel/cmdline, by the real kernel-install
    write_config(root.root, config_text(bootloader="kernel-install"))
    reconcile_in(root)
    assert not any(M1 in p.read_text() for p in entries.glob("*.conf"))
    root.chroot("kernel-install", "add", "6.1.0-28-amd64", "/boot/vmlinuz-6.1.0-28-amd64")
    assert M1 not in next(entries.glob("*6.1.0-28-amd64.conf")).read_text()
    root.file("/boot/vmlinuz-6.1.0-28-amd64").unlink()
