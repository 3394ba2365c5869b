"""`pmemd reconcile --remove-all` (what removing the package runs): exactly the options
pmemd's state records as its own leave the next boot, through the backend that wrote them,
with the same checks and rollback as a reconcile; the admin's options and memmap= options
pmemd did not write stay; a second run changes nothing; nothing recorded means nothing is
looked at. Against the real update-grub (Debian root), the grubby and grub2-mkconfig
stand-ins and kernel-install's files."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from pmemd.boot.reconcile import reconcile
from pmemd.boot.removal import remove_all
from pmemd.cli.exits import Exit
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.machine.state import read_state
from tests.boot.conftest import (
    BACKUPS,
    assert_same_files,
    config_text,
    options_lines,
    snapshot,
    standin_calls,
    with_standins,
    write_config,
)
from tests.boot.debianroot import DebianRoot
from tests.conftest import run_pmemd

Tree = Callable[..., Path]
M1, M2 = "memmap=4G!12G", "memmap=2G!10G"
FOREIGN = "memmap=64M!0x7c000000"  # a pmem range the admin set up by hand
ADMIN = "console=ttyS0"
STATE = "var/lib/pmemd/state.json"
REBOOT_MARKER = "run/pmemd/reboot-required"
TWO_REGIONS = config_text(("data", "4G", "12G"), ("cache", "2G", "10G"), kaslr="disable")


def remove(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_pmemd("reconcile", "--root", str(root), "--remove-all", *args)
    return subprocess.CompletedProcess([], done.returncode, done.stdout, done.stderr)


def boot_files(root: Path) -> dict[str, bytes]:
    """The bootloader's files (pmemd's backups aside)."""
    return {k: v for k, v in snapshot(root).items()
            if k.startswith(("boot/", "etc/default", "etc/kernel")) and not k.endswith(BACKUPS)}


# --- kernel-install (files only) -------------------------------------------------------------

SD_ENTRIES = "boot/efi/loader/entries"


@pytest.fixture
def systemd_boot(tree: Tree) -> Path:
    """systemd-boot entries that already carry an admin option and a foreign memmap=."""
    root = tree("debian12-systemd-boot", config=TWO_REGIONS)
    for path in [root / "etc/kernel/cmdline", *(root / SD_ENTRIES).glob("*.conf")]:
        path.write_text(path.read_text().replace(" quiet", f" quiet {ADMIN} {FOREIGN}"))
    return root


def test_kernel_install_gets_back_every_byte_and_the_admins_options(systemd_boot: Path) -> None:
    root = systemd_boot
    original = boot_files(root)
    reconcile(Machine(root), Runner())
    assert all(line.endswith(f"{M2} {M1} nokaslr") for line in options_lines(root, SD_ENTRIES))
    write_config(root, "this is: [not a valid config\n")  # removal does not need the config
    done = remove(root)
    assert done.returncode == Exit.REBOOT_REQUIRED, done.stdout + done.stderr
    assert f"pmemd's options (removed): {M2} {M1} nokaslr" in done.stdout
    assert f"Wrote {root}/etc/kernel/cmdline" in done.stdout
    assert_same_files(boot_files(root), original)
    assert all(f"{ADMIN} {FOREIGN}" in line for line in options_lines(root, SD_ENTRIES))
    assert read_state(Machine(root)).owned == ()
    assert "reboot to give the reserved memory back" in (root / REBOOT_MARKER).read_text()
    assert (root / "run/reboot-required").is_file()


def test_second_run_is_a_no_op(systemd_boot: Path) -> None:
    root = systemd_boot
    reconcile(Machine(root), Runner())
    assert remove(root).returncode == Exit.REBOOT_REQUIRED
    before = snapshot(root)
    done = remove(root)
    assert done.returncode == Exit.OK, done.stdout + done.stderr
    assert "Nothing to remove" in done.stdout
    assert snapshot(root) == before


def test_dry_run_prints_the_diffs_and_writes_nothing(systemd_boot: Path) -> None:
    root = systemd_boot
    reconcile(Machine(root), Runner())
    before = snapshot(root)
    done = remove(root, "--dry-run")
    assert done.returncode == Exit.CHANGES_PENDING, done.stdout + done.stderr
    assert f"-options    root=UUID=eeddd662-a512-429e-b053-0907b36addce ro quiet {ADMIN}" \
        in done.stdout
    assert f"Would write {root}/etc/kernel/cmdline:" in done.stdout
    assert "Would record" in done.stdout
    assert snapshot(root) == before


def test_json_document_lists_what_it_removed(systemd_boot: Path) -> None:
    root = systemd_boot
    reconcile(Machine(root), Runner())
    done = remove(root, "--json")
    assert done.returncode == Exit.REBOOT_REQUIRED
    document = json.loads(done.stdout)
    assert document["removed"] == [M2, M1, "nokaslr"] and document["applied"]
    assert document["bootloader"]["backend"] == "kernel-install"
    assert {f["path"] for f in document["files"]} >= {f"{root}/etc/kernel/cmdline"}


def test_only_what_the_state_records_is_removed(systemd_boot: Path) -> None:
    """An option the admin wrote, equal to one the config asks for, stays the admin's."""
    root = systemd_boot
    for path in [root / "etc/kernel/cmdline", *(root / SD_ENTRIES).glob("*.conf")]:
        path.write_text(path.read_text().replace(f" {FOREIGN}", f" {FOREIGN} {M1}"))
    reconcile(Machine(root), Runner())
    assert read_state(Machine(root)).owned == (M2, "nokaslr")
    assert remove(root).returncode == Exit.REBOOT_REQUIRED
    assert all(f"{FOREIGN} {M1}" in line and M2 not in line and "nokaslr" not in line
               for line in options_lines(root, SD_ENTRIES))


def test_nothing_recorded_exits_0_without_a_bootloader(tree: Tree) -> None:
    """A machine with no bootloader pmemd knows, no config and no state: nothing to do, no
    error (package removal in a bare chroot)."""
    root = tree(None)
    before = snapshot(root)
    done = remove(root)
    assert done.returncode == Exit.OK, done.stdout + done.stderr
    assert "Nothing to remove" in done.stdout and done.stderr == ""
    assert snapshot(root) == before
    result = remove_all(Machine(root), Runner())
    assert result.detection is None and result.write.empty


def test_a_corrupt_state_file_is_an_error_and_nothing_is_written(systemd_boot: Path) -> None:
    root = systemd_boot
    reconcile(Machine(root), Runner())
    (root / STATE).write_text("{ not json")
    before = snapshot(root)
    done = remove(root)
    assert done.returncode == Exit.FAILURE
    assert "will not guess which kernel options are its own" in done.stderr
    assert snapshot(root) == before


def test_a_lost_bootloader_is_an_error_naming_it(systemd_boot: Path) -> None:
    """The recorded backend is gone (entries removed by hand): a clear error, the record
    kept so that a later run can still take the options off."""
    root = systemd_boot
    reconcile(Machine(root), Runner())
    for entry in (root / SD_ENTRIES).glob("*.conf"):
        entry.unlink()
    done = remove(root)
    assert done.returncode == Exit.FAILURE
    assert "kernel-install (recorded in" in done.stderr
    assert read_state(Machine(root)).owned == (M2, M1, "nokaslr")


def test_removed_options_still_running_are_kept_as_retired(systemd_boot: Path) -> None:
    root = systemd_boot
    reconcile(Machine(root), Runner())
    cmdline = root / "proc/cmdline"
    cmdline.write_text(cmdline.read_text().strip() + f" {M1}\n")
    assert remove(root).returncode == Exit.REBOOT_REQUIRED
    state = read_state(Machine(root))
    assert state.owned == () and state.retired == (M1,)


# --- grubby (stand-in) ------------------------------------------------------------------------

BLS = "boot/loader/entries"


@pytest.fixture
def fedora(tree: Tree) -> Iterator[Path]:
    with with_standins(tree("fedora39", config=config_text(("data", "4G", "12G"),
                                                           ("cache", "2G", "10G"))),
                       "grubby") as root:
        for entry in (root / BLS).glob("*.conf"):
            entry.write_text(entry.read_text().replace("rhgb quiet",
                                                       f"rhgb quiet {ADMIN} {FOREIGN}"))
        yield root


def test_grubby_removes_only_pmemds_options_in_one_call(fedora: Path) -> None:
    original = boot_files(fedora)
    reconcile(Machine(fedora), Runner())
    (fedora / "etc/pmemd.yaml").unlink()  # removal does not need the config
    done = remove(fedora)
    assert done.returncode == Exit.REBOOT_REQUIRED, done.stdout + done.stderr
    assert standin_calls(fedora)[-1] == ["--update-kernel=ALL", "--no-etc-grub-update",
                                         f"--remove-args={M2} {M1}"]
    assert all(line.endswith(f"rhgb quiet {ADMIN} {FOREIGN}")
               for line in options_lines(fedora, BLS))
    # pmemd keeps /etc/default/grub in step itself (grubby told not to): the foreign option
    # it passed grubby again (grubby drops every memmap= first) never reaches that file, so
    # the entries and /etc/default/grub come back byte for byte. /etc/kernel/cmdline was
    # missing: pmemd made it from the default entry (for kernels installed before the
    # reboot), and it stays, without pmemd's options.
    after = boot_files(fedora)
    made = after.pop("etc/kernel/cmdline").decode()
    assert M1 not in made and made.endswith(f"rhgb quiet {ADMIN} {FOREIGN}\n")
    assert_same_files(after, original)
    calls = len(standin_calls(fedora))
    assert remove(fedora).returncode == Exit.OK
    assert len(standin_calls(fedora)) == calls  # the second run runs no tool


def test_grubby_failure_restores_every_file_and_keeps_the_record(fedora: Path) -> None:
    reconcile(Machine(fedora), Runner())
    before = boot_files(fedora)
    rescue = next((fedora / BLS).glob("*rescue.conf"))
    subprocess.run(["chattr", "+i", str(rescue)], check=True)
    try:
        done = remove(fedora)
    finally:
        subprocess.run(["chattr", "-i", str(rescue)], check=True)
    assert done.returncode == Exit.FAILURE
    assert "Operation not permitted" in done.stderr  # grubby's own words
    assert "pmemd put the previous bootloader files back" in done.stderr
    assert boot_files(fedora) == before
    assert read_state(Machine(fedora)).owned == (M2, M1)
    assert not (fedora / REBOOT_MARKER).exists() or "took its options off" not in \
        (fedora / REBOOT_MARKER).read_text()


# --- grub2-mkconfig (stand-in) ----------------------------------------------------------------


@pytest.fixture
def suse(tree: Tree) -> Iterator[Path]:
    with ExitStack() as stack:
        root = tree("sle15", config=config_text(("data", "4G", "12G"),
                                                bootloader="grub2-mkconfig"))
        grub = root / "etc/default/grub"
        text = grub.read_text()
        start = text.index('GRUB_CMDLINE_LINUX="') + len('GRUB_CMDLINE_LINUX="')
        grub.write_text(text[:start] + f"{ADMIN} {FOREIGN} " + text[start:])
        yield stack.enter_context(with_standins(root, "grub2-mkconfig"))


def test_grub2_mkconfig_gives_back_the_admins_file_byte_for_byte(suse: Path) -> None:
    admins = (suse / "etc/default/grub").read_bytes()
    reconcile(Machine(suse), Runner())
    assert M1 in (suse / "etc/default/grub").read_text()
    done = remove(suse)
    assert done.returncode == Exit.REBOOT_REQUIRED, done.stdout + done.stderr
    assert (suse / "etc/default/grub").read_bytes() == admins
    assert standin_calls(suse)[-1] == ["-o", "/boot/grub2/grub.cfg"]
    grub_cfg = (suse / "boot/grub2/grub.cfg").read_text()
    assert M1 not in grub_cfg and f"{ADMIN} {FOREIGN}" in grub_cfg
    before = snapshot(suse)
    assert remove(suse).returncode == Exit.OK
    assert snapshot(suse) == before


# --- Debian: the real update-grub -------------------------------------------------------------


def test_update_grub_drop_in_removed_and_grub_cfg_regenerated(
        debian: tuple[DebianRoot, Path]) -> None:
    root, _ = debian
    grub = root.file("/etc/default/grub")
    grub.write_text(grub.read_text().replace('GRUB_CMDLINE_LINUX=""',
                                             f'GRUB_CMDLINE_LINUX="{ADMIN} {FOREIGN}"'))
    root.update_grub()
    original = boot_files(root.root)
    write_config(root.root, TWO_REGIONS)
    reconcile(Machine(root.root), Runner())
    assert root.file("/etc/default/grub.d/pmemd.cfg").is_file()
    write_config(root.root, "version: 2\n")  # an invalid config: removal does not need it
    done = remove(root.root)
    assert done.returncode == Exit.REBOOT_REQUIRED, done.stdout + done.stderr
    assert f"Removed {root.root}/etc/default/grub.d/pmemd.cfg" in done.stdout
    assert f"Ran: chroot {root.root} /usr/sbin/update-grub" in done.stdout
    assert not root.file("/etc/default/grub.d/pmemd.cfg").exists()
    assert_same_files(boot_files(root.root), original)
    linux = [line for line in root.file("/boot/grub/grub.cfg").read_text().splitlines()
             if line.strip().startswith("linux\t")]
    assert linux and all(f"{ADMIN} {FOREIGN}" in line and "memmap=4G" not in line
                         and "nokaslr" not in line for line in linux)
    assert root.file("/run/reboot-required").is_file()
    runner = Runner()
    second = remove_all(Machine(root.root), runner)
    assert runner.recorded == [] and second.detection is None
