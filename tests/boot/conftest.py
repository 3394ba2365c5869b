"""Machines for the bootloader tests.

* :func:`machine_tree`: an example machine's facts (examples/machines/*) with a distro's
  bootloader files (tests/fixtures/bootloader/<distro>) on top, in a temporary root;
* :func:`with_standins`: makes such a root a chroot in which the recording stand-ins for
  grubby / grub2-mkconfig run (the host's /usr/bin, /usr/lib and /usr/lib64 bound read-only:
  sh, sed and python3 for the stand-ins, nothing of the host's /usr/sbin);
* ``debian``: a real Debian 12 root (tests.boot.debianroot) for the real update-grub
  and kernel-install, shared by a module and put back between tests.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from pmemd.boot.backends.base import Backend
from pmemd.boot.detect import detect
from pmemd.boot.trial import arm_trial
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.machine.state import read_state
from tests.boot.debianroot import DebianRoot, bind_facts, debian_root
from tests.conftest import FIXTURES, MACHINES, REPO, run_pmemd

BOOTLOADER_FIXTURES = FIXTURES / "bootloader"
STANDINS = Path(__file__).resolve().parent / "standins"
STANDIN_LOG = "var/log/pmemd-standins.log"
HOST_DIRS = ("usr/bin", "usr/lib", "usr/lib64")


def machine_tree(target: Path, distro: str | None, facts: str = "server-16g",
                 config: str | None = None) -> Path:
    """``target`` filled with an example machine and a distro's bootloader files."""
    shutil.copytree(MACHINES / facts, target, symlinks=True)
    if distro is not None:
        shutil.copytree(BOOTLOADER_FIXTURES / distro, target, symlinks=True, dirs_exist_ok=True)
    if config is not None:
        write_config(target, config)
    return target


def write_config(root: Path, text: str) -> Path:
    path = root / "etc" / "pmemd.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def config_text(*regions: tuple[str, str, str | None], bootloader: str = "auto",
                reboot: str = "never", kaslr: str = "warn", trial: str | None = None) -> str:
    """A pmemd.yaml with regions given as (name, size, offset or None)."""
    lines = ["version: 1", "boot:", f"  bootloader: {bootloader}", f"  reboot: {reboot}",
             f"  kaslr: {kaslr}", *([f"  trial: {trial}"] if trial else [])]
    if not regions:
        lines.append("regions: []")
    else:
        lines.append("regions:")
        for name, size, offset in regions:
            lines += [f"  - name: {name}", f"    size: {size}"]
            if offset is not None:
                lines.append(f"    offset: {offset}")
    return "\n".join(lines) + "\n"


SNAPSHOT_SKIPS = ("proc", "sys", "dev", "usr", "bin", "lib", "lib64", "sbin")
# The change lock's file: every change takes the lock first, so even one that then writes
# nothing leaves it (empty, in /run, gone at reboot) — as flock(1) users leave theirs.
LOCK_FILE = "run/pmemd/lock"
# The copies pmemd leaves beside a file it replaces: the previous version, the admin's own.
BACKUPS = (".pmemd-bak", ".pmemd-orig")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (not the facts of /proc and /sys): to compare before/after.
    Those trees are never entered: in a chroot they are the live kernel's, where processes
    come and go while the walk runs."""
    files = {}
    for directory, subdirs, names in os.walk(root):
        if Path(directory) == root:
            subdirs[:] = [d for d in subdirs if d not in SNAPSHOT_SKIPS]
        for name in names:
            path = Path(directory, name)
            key = path.relative_to(root).as_posix()
            if path.is_file() and not path.is_symlink() and key != LOCK_FILE:
                files[key] = path.read_bytes()
    return dict(sorted(files.items()))


def entry_options(root: Path, entries: str) -> dict[str, str]:
    """The ``options`` line of every BLS / loader entry in ``entries``, by file name."""
    return {p.name: next(line for line in p.read_text().splitlines()
                         if line.startswith("options"))
            for p in sorted((root / entries).glob("*.conf"))}


def options_lines(root: Path, entries: str) -> list[str]:
    """The entries' ``options`` lines, in file-name order."""
    return list(entry_options(root, entries).values())


def standin_calls(root: Path) -> list[list[str]]:
    """The argv of every stand-in run in ``root``, in order."""
    log = root / STANDIN_LOG
    if not log.exists():
        return []
    return [json.loads(line)["argv"] for line in log.read_text().splitlines()]


def _mount(*argv: str) -> None:
    subprocess.run(["mount", *argv], check=True, capture_output=True)


@contextmanager
def with_standins(root: Path, *tools: str) -> Iterator[Path]:
    """``root`` usable as a chroot with the named stand-ins in /sbin."""
    sbin = root / "sbin"
    sbin.mkdir(exist_ok=True)
    for tool in tools:
        shutil.copy2(STANDINS / tool, sbin / tool)
    for link, to in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        if not (root / link).exists():
            (root / link).symlink_to(to)
    mounted: list[Path] = []
    try:
        for directory in HOST_DIRS:
            if not Path("/", directory).is_dir():
                continue
            target = root / directory
            target.mkdir(parents=True, exist_ok=True)
            _mount("--bind", f"/{directory}", str(target))
            mounted.append(target)
            _mount("-o", "remount,bind,ro", str(target))
        yield root
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


@pytest.fixture
def tree(tmp_path: Path) -> Callable[..., Path]:
    """``tree(distro, facts=..., config=...)``: a fresh machine tree."""
    counter = iter(range(1000))

    def make(distro: str | None, facts: str = "server-16g", config: str | None = None) -> Path:
        return machine_tree(tmp_path / f"root{next(counter)}", distro, facts, config)

    return make


# --- the real Debian root ---------------------------------------------------------------------


@contextmanager
def installed_debian(workdir: Path) -> Iterator[DebianRoot]:
    """A Debian root as installed: the example machine's kernel config, update-grub run."""
    if os.geteuid() != 0:
        pytest.fail("the Debian root needs root (loop devices, mounts, chroot)")
    with debian_root(workdir) as root:
        kernel_config = next((MACHINES / "server-16g" / "boot").glob("config-*"))
        shutil.copy(kernel_config, root.file(f"/boot/{kernel_config.name}"))
        root.update_grub()
        yield root


@contextmanager
def with_facts(root: DebianRoot, facts: Path) -> Iterator[tuple[DebianRoot, Path]]:
    """``root`` with a copy (in ``facts``) of the 16 GiB example machine's facts bound over
    its /proc and /sys files: ``(root, facts)``."""
    shutil.copytree(MACHINES / "server-16g", facts)
    boot_id = facts / "proc/sys/kernel/random/boot_id"
    boot_id.parent.mkdir(parents=True, exist_ok=True)
    boot_id.write_text("6b1f0c6e-5f57-4a57-9d43-3c1c1f0d2b11\n")
    with ExitStack() as stack:
        bind_facts(stack, root, facts)
        yield root, facts


@pytest.fixture(scope="module")
def debian_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DebianRoot]:
    with installed_debian(tmp_path_factory.mktemp("debian")) as root:
        root.remember("/etc/default/grub", "/etc/default/grub.d/pmemd.cfg",
                      "/boot/grub/grub.cfg", "/boot/grub/grubenv", "/etc/pmemd.yaml",
                      "/etc/grub.d/45_broken", "/etc/kernel/cmdline", "/etc/kernel/install.conf",
                      "/etc/default/grub.d/zz-admin.cfg", "/boot/grub/grub.cfg.new")
        yield root


@pytest.fixture
def debian(debian_module: DebianRoot, tmp_path: Path) -> Iterator[tuple[DebianRoot, Path]]:
    """The Debian root as installed (update-grub run once), with a copy of the 16 GiB
    example machine's facts bound over its /proc and /sys files: ``(root, facts)``."""
    debian_module.reset()
    with with_facts(debian_module, tmp_path / "facts") as both:
        yield both
    debian_module.reset()


def assert_same_files(after: dict[str, bytes], before: dict[str, bytes]) -> None:
    """``after == before``, failing with a unified diff of what differs."""
    if after == before:
        return
    report = [f"only before: {sorted(set(before) - set(after))}",
              f"only after: {sorted(set(after) - set(before))}"]
    for name in sorted(set(before) & set(after)):
        if before[name] != after[name]:
            report += difflib.unified_diff(
                before[name].decode(errors="replace").splitlines(),
                after[name].decode(errors="replace").splitlines(), f"{name} before",
                f"{name} after", lineterm="")
    pytest.fail("\n".join(report))


KILL_AT_RENAME = """
import os, signal, sys
target = sys.argv[1]
def hook(event, args):
    if event == "os.rename" and os.fspath(args[1]) == target:
        os.kill(os.getpid(), signal.SIGKILL)  # between the fsynced temp file and the rename
sys.addaudithook(hook)
from pmemd.cli.pmemd import main
sys.exit(main(sys.argv[2:]))
"""


def killed_at_rename(target: Path, *args: str) -> None:
    """Run ``pmemd ARGS`` and SIGKILL it the moment it renames a new ``target`` into place
    (a Python audit hook on os.rename/os.replace: the real process, really killed)."""
    killed = subprocess.run([sys.executable, "-c", KILL_AT_RENAME, str(target), *args],
                            cwd=REPO, capture_output=True, text=True, check=False, timeout=120)
    assert killed.returncode == -9, killed.stdout + killed.stderr


def arm_test_trial(root: Path, desired: tuple[str, ...]) -> tuple[Machine, Backend]:
    """With pmemd's options applied directly (the config says ``trial: never``), arm a
    trial of ``desired`` (digest ``feedc0de``, armed on ``boot-a``) as a reconcile would."""
    done = run_pmemd("reconcile", "--root", str(root))
    assert done.returncode == 5, done.stdout + done.stderr
    machine = Machine(root)
    backend = detect(machine).require()
    assert backend.trial_support(Runner()) is None
    arm_trial(machine, Runner(), backend, read_state(machine),
              current=backend.read_next_boot(), desired=desired, digest="feedc0de",
              boot_id="boot-a")
    return machine, backend
