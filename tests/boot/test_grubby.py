"""Fedora/RHEL: one `grubby --update-kernel=ALL` call with all regions, checked by reading
the BLS entries back; what kernels installed later and a later `grub2-mkconfig` take
(/etc/kernel/cmdline, GRUB_CMDLINE_LINUX) kept in step by pmemd itself. The recording
stand-ins (grubby, grub2-editenv, grub2-mkconfig, 20-grub.install) do to the files what the
Fedora tools do; EL8's entries read `$kernelopts` from grubenv."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pmemd.boot.backends.base import NextBoot
from pmemd.boot.detect import detect
from pmemd.boot.reconcile import Outcome, reconcile
from pmemd.core.cmdline import carries
from pmemd.core.plan import PlanState
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from tests.boot.conftest import (
    BACKUPS,
    STANDIN_LOG,
    config_text,
    entry_options,
    options_lines,
    snapshot,
    standin_calls,
    with_standins,
    write_config,
)
from tests.conftest import REPO, run_pmemd, sigint_as_at_a_terminal

Tree = Callable[..., Path]
M1, M2 = "memmap=4G!12G", "memmap=2G!10G"
ENTRIES = "boot/loader/entries"
FOREIGN = "memmap=64M!0x7c000000"  # a pmem range the admin set up by hand
TOOLS = ("grubby", "grub2-editenv", "grub2-mkconfig", "20-grub.install")
FEDORA_ID = "2f3c9a6e1b7d4c58a0e4f9b2d6c13e87"  # /etc/machine-id of the fedora39 tree
FEDORA_OPTIONS = "root=UUID=9c4e1a7b-3d5f-4e2a-8b6c-0d1e2f3a4b5c ro rootflags=subvol=root " \
                 "rhgb quiet"  # every fedora39 entry's, as Anaconda wrote them
EL8_OLDER = "8b1d4f2a6c3e4a9b8f7e6d5c4b3a2910-4.18.0-477.27.1.el8_8.x86_64"
EL8_NEWER = "8b1d4f2a6c3e4a9b8f7e6d5c4b3a2910-4.18.0-513.5.1.el8_9.x86_64"
EL8_KERNELOPTS = "root=/dev/mapper/rhel-root ro crashkernel=auto resume=/dev/mapper/rhel-swap " \
                 "rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap rhgb quiet"


@pytest.fixture
def fedora(tree: Tree) -> Iterator[Path]:
    with with_standins(tree("fedora39", config=config_text(("data", "4G", "12G"),
                                                           ("cache", "2G", "10G"))),
                       "grubby") as root:
        yield root


def run(root: Path, runner: Runner | None = None) -> Outcome:
    return reconcile(Machine(root), runner or Runner())


def remove_all(root: Path) -> None:
    done = run_pmemd("reconcile", "--root", str(root), "--remove-all")
    assert done.returncode == 5, done.stdout + done.stderr


def options(root: Path) -> list[str]:
    return options_lines(root, ENTRIES)


def bootloader_files(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in snapshot(root).items()
            if k.startswith((ENTRIES, "boot/grub2", "etc/default", "etc/kernel"))
            and not k.endswith(BACKUPS)}


def grubby_calls(root: Path) -> list[list[str]]:
    """grubby's argv, each run (the other stand-ins log theirs in the same file)."""
    log = root / STANDIN_LOG
    lines = log.read_text().splitlines() if log.exists() else []
    return [call["argv"] for call in map(json.loads, lines) if call["tool"] == "grubby"]


def chroot(root: Path, *argv: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True,
                          env=env, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def next_boot(root: Path) -> NextBoot:
    return detect(Machine(root)).require().read_next_boot()


def select_default(root: Path, entry_id: str) -> None:
    chroot(root, "/sbin/grub2-editenv", "-", "set", f"saved_entry={entry_id}")


def test_all_regions_in_one_grubby_call_and_every_entry_carries_them(fedora: Path) -> None:
    runner = Runner()
    outcome = run(fedora, runner)
    assert runner.recorded == [("chroot", str(fedora), "/sbin/grubby", "--update-kernel=ALL",
                                "--no-etc-grub-update", f"--args={M2} {M1}")]
    assert standin_calls(fedora) == [["--update-kernel=ALL", "--no-etc-grub-update",
                                      f"--args={M2} {M1}"]]
    assert outcome.state is PlanState.REBOOT_REQUIRED
    assert all(line.endswith(f"rhgb quiet {M2} {M1}") for line in options(fedora))
    assert f'GRUB_CMDLINE_LINUX="rhgb quiet {M2} {M1}"' in \
        (fedora / "etc/default/grub").read_text()  # pmemd keeps it for grub2-mkconfig


def test_second_run_runs_no_tool_and_changes_nothing(fedora: Path) -> None:
    run(fedora)
    before = snapshot(fedora)
    runner = Runner()
    outcome = run(fedora, runner)
    assert runner.recorded == [] and len(standin_calls(fedora)) == 1
    assert not outcome.applied and snapshot(fedora) == before


def test_foreign_memmap_survives_grubby_dropping_every_memmap(fedora: Path) -> None:
    for entry in (fedora / ENTRIES).glob("*.conf"):
        entry.write_text(entry.read_text().replace("rhgb quiet", f"rhgb quiet {FOREIGN}"))
    outcome = run(fedora)
    assert standin_calls(fedora)[-1] == ["--update-kernel=ALL", "--no-etc-grub-update",
                                         f"--args={FOREIGN} {M2} {M1}"]
    assert outcome.write.keep == (FOREIGN,)
    assert all(FOREIGN in line and M1 in line for line in options(fedora))
    # what pmemd passed again to keep it is not pmemd's to write anywhere else
    assert FOREIGN not in (fedora / "etc/default/grub").read_text()


def test_resize_and_remove_touch_only_pmemds_options(fedora: Path) -> None:
    original = bootloader_files(fedora)
    run(fedora)
    write_config(fedora, config_text(("data", "2G", "12G"), ("cache", "2G", "10G")))
    run(fedora)
    assert standin_calls(fedora)[-1] == ["--update-kernel=ALL", "--no-etc-grub-update",
                                         f"--args={M2} memmap=2G!12G", f"--remove-args={M1}"]
    assert all(line.endswith(f"{M2} memmap=2G!12G") for line in options(fedora))
    write_config(fedora, config_text())
    run(fedora)
    assert standin_calls(fedora)[-1] == ["--update-kernel=ALL", "--no-etc-grub-update",
                                         f"--remove-args={M2} memmap=2G!12G"]
    after = bootloader_files(fedora)
    # /etc/kernel/cmdline was missing: pmemd made it (see the new-kernel tests below)
    assert after.pop("etc/kernel/cmdline") == f"{FEDORA_OPTIONS}\n".encode()
    assert after == original


def test_grubby_failure_restores_every_file_and_reports_its_output(fedora: Path) -> None:
    before = bootloader_files(fedora)
    rescue = next((fedora / ENTRIES).glob("*rescue.conf"))
    subprocess.run(["chattr", "+i", str(rescue)], check=True)
    try:
        done = run_pmemd("reconcile", "--root", str(fedora))
    finally:
        subprocess.run(["chattr", "-i", str(rescue)], check=True)
    assert done.returncode == 1
    assert "/sbin/grubby --update-kernel=ALL" in done.stderr
    assert "failed with exit status 1" in done.stderr
    assert "Operation not permitted" in done.stderr  # grubby's own words
    assert "pmemd put the previous bootloader files back" in done.stderr
    assert len(standin_calls(fedora)) == 1  # it ran, and changed the newer entries first
    assert bootloader_files(fedora) == before  # /etc/kernel/cmdline made by pmemd: gone
    assert not (fedora / "var/lib/pmemd/state.json").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_reconcile_puts_every_file_back(fedora: Path, signum: int) -> None:
    """``systemctl stop`` (SIGTERM) or Ctrl-C while grubby runs: grubby has already
    rewritten every entry when the signal comes; pmemd kills it, puts the entries, grubenv,
    /etc/default/grub, /etc/kernel/cmdline and its own state back as they were, and exits
    143 (130)."""
    grubby = fedora / "sbin" / "grubby"
    slow = fedora / "sbin" / "grubby.real"
    grubby.rename(slow)
    grubby.write_text("#!/bin/sh\n/sbin/grubby.real \"$@\" && exec sleep 3017\n")
    grubby.chmod(0o755)
    before = bootloader_files(fedora)
    with sigint_as_at_a_terminal():
        process = subprocess.Popen([sys.executable, "-m", "pmemd", "reconcile", "--root",
                                    str(fedora)], cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and subprocess.run(
            ["pgrep", "-f", "sleep 3017"], capture_output=True, check=False).returncode:
        time.sleep(0.1)  # until grubby has done its work (the wrapper then sleeps)
    assert bootloader_files(fedora) != before  # the tool's changes are on disk now
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    expected = 143 if signum == signal.SIGTERM else 130
    assert process.returncode == expected, err
    assert bootloader_files(fedora) == before
    assert not Machine(fedora).state_file.exists()  # the claim went back too
    left = subprocess.run(["pgrep", "-f", "sleep 3017"], capture_output=True, check=False)
    assert left.returncode == 1  # grubby's whole process group is gone


# --- EL8: options $kernelopts -------------------------------------------------------------------


@pytest.fixture
def el8(tree: Tree) -> Iterator[Path]:
    with with_standins(tree("el8", config=config_text(("data", "4G", "12G"))),
                       *TOOLS) as root:
        yield root


def grubenv(root: Path) -> str:
    return (root / "boot/grub2/grubenv").read_text()


def make_literal(root: Path, entry_id: str) -> None:
    """The entry's options written out, as grubby --update-kernel=<that kernel> leaves
    them: the entry no longer reads $kernelopts."""
    path = root / ENTRIES / f"{entry_id}.conf"
    path.write_text(path.read_text().replace("options $kernelopts $tuned_params",
                                             f"options {EL8_KERNELOPTS}"))


def test_el8_kernelopts_in_grubenv_carry_the_options(el8: Path) -> None:
    entries = {p.name: p.read_bytes() for p in (el8 / ENTRIES).glob("*.conf")}
    outcome = run(el8)
    assert outcome.state is PlanState.REBOOT_REQUIRED
    env = grubenv(el8)
    assert len(env) == 1024
    assert f"kernelopts={EL8_KERNELOPTS} {M1}\n" in env
    assert {p.name: p.read_bytes() for p in (el8 / ENTRIES).glob("*.conf")} == entries
    assert outcome.plan.changes[0].argument == M1
    assert not (el8 / "etc/kernel/cmdline").exists()  # new EL8 entries read $kernelopts


@pytest.mark.parametrize("literal", [(), (EL8_OLDER,), (EL8_OLDER, EL8_NEWER)],
                         ids=["all-kernelopts", "one-literal", "all-literal"])
def test_el8_literal_entries_are_edited_and_kernelopts_ones_read_grubenv(
        el8: Path, literal: tuple[str, ...]) -> None:
    for entry_id in literal:
        make_literal(el8, entry_id)
    before = {p.stem: p.read_bytes() for p in (el8 / ENTRIES).glob("*.conf")}
    run(el8)
    assert f"kernelopts={EL8_KERNELOPTS} {M1}\n" in grubenv(el8)  # grubby edits it anyway
    for entry_id, text in before.items():
        after = (el8 / ENTRIES / f"{entry_id}.conf").read_bytes()
        if entry_id in literal:  # edited in place, every other line kept
            assert after == text.replace(EL8_KERNELOPTS.encode(),
                                         f"{EL8_KERNELOPTS} {M1}".encode())
        else:
            assert after == text
        select_default(el8, entry_id)  # whichever GRUB boots, the next boot carries it
        boot = next_boot(el8)
        assert boot.cmdline is not None and carries(boot.cmdline, M1), boot.describe()
    remove_all(el8)
    assert {p.stem: p.read_bytes() for p in (el8 / ENTRIES).glob("*.conf")} == before


FALLBACK = 'if [ -z "${kernelopts}" ]; then\n  set kernelopts="root=/dev/sda2 ro from-cfg"\nfi\n'


@pytest.mark.parametrize(("env_lines", "grub_cfg", "expected"), [
    (f"kernelopts={EL8_KERNELOPTS}\ntuned_params=skew_tick=1\n", None,
     f"{EL8_KERNELOPTS} skew_tick=1"),
    ("", FALLBACK, "root=/dev/sda2 ro from-cfg"),  # grubenv does not set it
    ("kernelopts=\n", FALLBACK, "root=/dev/sda2 ro from-cfg"),  # GRUB's -z: empty is unset
    (f"kernelopts={EL8_KERNELOPTS}\n", FALLBACK, EL8_KERNELOPTS),  # grubenv's wins
    ("", None, None),  # nothing sets it: unknown, not empty
], ids=["grubenv", "grub.cfg-fallback", "empty-in-grubenv", "grubenv-first", "unset"])
def test_what_pmemd_reads_for_an_entry_that_reads_kernelopts(
        el8: Path, env_lines: str, grub_cfg: str | None, expected: str | None) -> None:
    head = f"# GRUB Environment Block\nsaved_entry={EL8_NEWER}\n{env_lines}"
    (el8 / "boot/grub2/grubenv").write_text(head.ljust(1024, "#"))
    if grub_cfg is not None:
        (el8 / "boot/grub2/grub.cfg").write_text(f"{grub_cfg}\ninsmod blscfg\nblscfg\n")
    boot = next_boot(el8)
    if expected is None:
        assert boot.cmdline is None and "$kernelopts" in boot.note, boot.describe()
    else:
        assert boot.cmdline is not None
        assert " ".join(a.text for a in boot.cmdline.args) == expected


@pytest.mark.parametrize(("grubenv_text", "why"), [
    (f"# GRUB Environment Block\nsaved_entry={EL8_NEWER}\n".ljust(1024, "#"),
     "2 BLS entries read $kernelopts, which /boot/grub2/grubenv does not set"),
    (f"saved_entry={EL8_NEWER}\nkernelopts={EL8_KERNELOPTS}\n".ljust(1024, "#"),
     "/boot/grub2/grubenv is not a GRUB environment block"),
], ids=["kernelopts-only-in-grub.cfg", "no-block-header"])
def test_el8_refuses_where_grubby_cannot_reach_kernelopts(
        el8: Path, grubenv_text: str, why: str) -> None:
    """Real grubby goes on without kernelopts there (grub2-editenv's complaint on stderr,
    exit status 0), leaving the entries without pmemd's options: pmemd says so first."""
    (el8 / "boot/grub2/grubenv").write_text(grubenv_text)
    (el8 / "boot/grub2/grub.cfg").write_text(FALLBACK.replace("from-cfg", "crashkernel=auto"))
    before = bootloader_files(el8)
    done = run_pmemd("reconcile", "--root", str(el8))
    assert done.returncode == 1, done.stdout + done.stderr
    assert why in done.stderr, done.stderr
    assert grubby_calls(el8) == []
    assert bootloader_files(el8) == before


# --- kernels installed later ----------------------------------------------------------------


def fedora_tree(tree: Tree, kernel_cmdline: str | None) -> Path:
    root = tree("fedora39", config=config_text(("data", "4G", "12G"), ("cache", "2G", "10G")))
    if kernel_cmdline is not None:
        (root / "etc/kernel").mkdir(parents=True, exist_ok=True)
        (root / "etc/kernel/cmdline").write_text(kernel_cmdline)
    (root / "etc/sysconfig").mkdir(parents=True, exist_ok=True)
    (root / "etc/sysconfig/kernel").write_text("UPDATEDEFAULT=yes\nDEFAULTKERNEL=kernel-core\n")
    return root


def install_kernel(root: Path, version: str) -> str:
    """What ``dnf install kernel`` does to the boot entries: kernel-install runs Fedora's
    20-grub.install; the new entry is the default (UPDATEDEFAULT=yes). Its options."""
    (root / f"boot/vmlinuz-{version}").write_bytes(b"kernel")
    chroot(root, "/sbin/20-grub.install", "add", version, f"/boot/{FEDORA_ID}/{version}",
           f"/boot/vmlinuz-{version}", env={"KERNEL_INSTALL_MACHINE_ID": FEDORA_ID,
                                            "PATH": "/sbin:/usr/sbin:/usr/bin:/bin"})
    return entry_options(root, ENTRIES)[f"{FEDORA_ID}-{version}.conf"]


@pytest.mark.parametrize("kernel_cmdline", [f"{FEDORA_OPTIONS}\n", None],
                         ids=["etc-kernel-cmdline", "no-etc-kernel-cmdline"])
def test_a_kernel_installed_before_the_reboot_carries_pmemds_options(
        tree: Tree, kernel_cmdline: str | None) -> None:
    """Without /etc/kernel/cmdline, 20-grub.install would take /proc/cmdline, which lacks
    what pmemd just added (and, after a removal, still has what it took away)."""
    with with_standins(fedora_tree(tree, kernel_cmdline), *TOOLS) as root:
        run(root)
        assert install_kernel(root, "6.8.5-301.fc39.x86_64").endswith(f"quiet {M2} {M1}")
        boot = next_boot(root)
        assert boot.kernel == "/vmlinuz-6.8.5-301.fc39.x86_64" and boot.cmdline is not None
        assert carries(boot.cmdline, M1) and carries(boot.cmdline, M2)
        calls = len(grubby_calls(root))
        assert not run(root).applied and len(grubby_calls(root)) == calls
        remove_all(root)
        assert "memmap" not in install_kernel(root, "6.9.4-200.fc39.x86_64")
        # given back byte for byte; or made, as grub2-mkconfig makes it: without pmemd's
        assert (root / "etc/kernel/cmdline").read_text() == (kernel_cmdline or
                                                              f"{FEDORA_OPTIONS}\n")


@pytest.mark.parametrize("distro", ["fedora39", "el8"])
def test_grubby_copy_default_gives_a_new_entry_pmemds_options(tree: Tree, distro: str) -> None:
    """``grubby --add-kernel --copy-default`` copies the default entry's options as written
    (on EL8 ``$kernelopts``, which reads grubenv)."""
    with with_standins(tree(distro, config=config_text(("data", "4G", "12G"))),
                       *TOOLS) as root:
        run(root)
        for version, wanted in (("6.8.5-301.test", True), ("6.9.4-200.test", False)):
            (root / f"boot/vmlinuz-{version}").write_bytes(b"kernel")
            chroot(root, "/sbin/grubby", f"--add-kernel=/boot/vmlinuz-{version}",
                   f"--title=test {version}", "--copy-default", "--make-default")
            boot = next_boot(root)
            assert (boot.kernel or "").endswith(f"/vmlinuz-{version}")
            assert boot.cmdline is not None
            assert carries(boot.cmdline, M1) is wanted, boot.describe()
            if wanted:
                remove_all(root)


# --- GRUB_CMDLINE_LINUX, for a later grub2-mkconfig ---------------------------------------------

STOCK = 'GRUB_CMDLINE_LINUX="rhgb quiet"\n'


@pytest.mark.parametrize("line", [
    STOCK,
    'GRUB_CMDLINE_LINUX=""\n',  # grubby leaves an empty value alone
    "GRUB_CMDLINE_LINUX='rhgb quiet'  # anaconda\n",  # grubby rewrites the whole line
    STOCK + 'GRUB_CMDLINE_LINUX_DEFAULT="nomodeset"\n',  # grubby < 8.40-73 clobbered it
], ids=["stock", "empty", "quoted-and-commented", "with-default"])
def test_grub_cmdline_linux_follows_and_comes_back_byte_for_byte(tree: Tree, line: str) -> None:
    root = tree("fedora39", config=config_text(("data", "4G", "12G"), ("cache", "2G", "10G")))
    default_grub = root / "etc/default/grub"
    default_grub.write_text(default_grub.read_text().replace(STOCK, line))
    original = default_grub.read_bytes()
    sourced = ". /etc/default/grub; printf %s \"$GRUB_CMDLINE_LINUX\""
    with with_standins(root, *TOOLS):
        run(root)
        assert chroot(root, "sh", "-c", sourced).split()[-2:] == [M2, M1]
        # what an admin runs after editing /etc/default/grub on Fedora 39+ / RHEL 9.3+
        chroot(root, "/sbin/grub2-mkconfig", "--update-bls-cmdline", "-o",
               "/boot/grub2/grub.cfg")
        assert all(f"{M2} {M1}" in text for text in options(root))
        calls = len(grubby_calls(root))
        assert not run(root).applied and len(grubby_calls(root)) == calls
        remove_all(root)
        assert default_grub.read_bytes() == original
        chroot(root, "/sbin/grub2-mkconfig", "--update-bls-cmdline", "-o",
               "/boot/grub2/grub.cfg")
        assert all("memmap" not in text for text in options(root))


def test_a_grub_cmdline_linux_pmemd_will_not_rewrite_is_refused(tree: Tree) -> None:
    root = tree("fedora39", config=config_text(("data", "4G", "12G")))
    default_grub = root / "etc/default/grub"
    default_grub.write_text(default_grub.read_text().replace(
        STOCK, 'GRUB_CMDLINE_LINUX="$EXTRA rhgb quiet"\n'))
    with with_standins(root, *TOOLS):
        before = bootloader_files(root)
        done = run_pmemd("reconcile", "--root", str(root))
        assert done.returncode == 1, done.stdout + done.stderr
        assert "/etc/default/grub:6: GRUB_CMDLINE_LINUX uses shell expansion" in done.stderr
        assert grubby_calls(root) == [] and bootloader_files(root) == before
