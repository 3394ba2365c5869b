"""The converged stamp: a reconcile that finds nothing to do is answered again, at the next
boot, without the work and without importing pmemd's core — until any input changes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pmemd.fastpath.converged import STAMP, replay_converged
from pmemd.machine.root import Machine
from tests.boot.conftest import config_text, write_config
from tests.conftest import REPO, run_pmemd

Tree = Callable[..., Path]
M1 = "memmap=4G!12G"
ENTRY = """
import sys
from pmemd.cli.entry import main
status = main()
heavy = sorted(m for m in sys.modules if m in ("yaml", "dataclasses", "pmemd.cli.pmemd",
                                                 "pmemd.boot.reconcile", "pmemd.core.config"))
print("imported:", heavy, file=sys.stderr)
sys.exit(status)
"""


def converged(tree: Tree) -> Path:
    """A systemd-boot machine already running with memmap=4G!12G; reconciled until the
    stamp is written."""
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G")))
    cmdline = root / "proc/cmdline"
    cmdline.write_text(cmdline.read_text().strip() + f" {M1}\n")
    for _ in range(3):
        done = run_pmemd("reconcile", "--root", str(root))
        assert done.returncode in (0, 5), done.stderr
    assert (root / STAMP).exists()
    return root


def entry(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", ENTRY, "reconcile", "--root", str(root),
                           *extra], cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=120)


def test_stamp_is_where_machine_says() -> None:
    assert Machine(Path("/x")).converged_stamp == Path("/x") / STAMP


def test_converged_reconcile_is_replayed_without_importing_the_core(tree: Tree) -> None:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G")))
    root = converged(lambda *a, **k: root)
    full = run_pmemd("reconcile", "--root", str(root))
    fast = entry(root)
    assert fast.returncode == 0 == full.returncode
    assert fast.stdout == full.stdout
    assert "State: converged" in fast.stdout
    assert "imported: []" in fast.stderr
    assert fast.stderr.replace("imported: []\n", "") == full.stderr  # the same warnings


@pytest.mark.parametrize("extra", [("--dry-run",), ("--json",), ("-v",)])
def test_only_a_plain_reconcile_is_replayed(tree: Tree, extra: tuple[str, ...]) -> None:
    root = converged(tree)
    assert replay_converged(["reconcile", "--root", str(root), *extra]) is None
    assert "'pmemd.cli.pmemd'" in entry(root, *extra).stderr


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _touch_entry(root: Path) -> None:
    entry_file = next((root / "boot/efi/loader/entries").glob("*27*.conf"))
    entry_file.write_text(entry_file.read_text().replace(f" {M1}", ""))


def _move_kernel_into_region(root: Path) -> None:
    iomem = root / "proc/iomem"
    iomem.write_text(iomem.read_text().replace("1a000000-1b002fff : Kernel code",
                                               "320000000-320ffffff : Kernel code"))


CHANGES: dict[str, Callable[[Path], object]] = {
    "config": lambda r: write_config(r, config_text(("data", "2G", "12G"))),
    "running command line": lambda r: (r / "proc/cmdline").write_text("ro\n"),
    "a loader entry": _touch_entry,
    "/etc/kernel/cmdline": lambda r: (r / "etc/kernel/cmdline").write_text("ro\n"),
    "firmware memory map": lambda r: (r / "sys/firmware/memmap/7/type").write_text("Reserved\n"),
    "a new kernel": lambda r: (r / "boot/vmlinuz-6.1.0-28-amd64").write_bytes(b""),
    "pmemd's state": lambda r: (r / "var/lib/pmemd/state.json").write_text("{}\n"),
    "a reboot marker": lambda r: _write(r / "run/pmemd/reboot-required", "x\n"),
    "the kernel image inside a region": _move_kernel_into_region,
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_any_changed_input_means_the_full_reconcile(tree: Tree, change: str) -> None:
    root = converged(tree)
    argv = ["reconcile", "--root", str(root)]
    assert replay_converged(argv) == 0
    CHANGES[change](root)
    assert replay_converged(argv) is None


def test_kaslr_moving_the_kernel_elsewhere_keeps_the_stamp(tree: Tree) -> None:
    root = converged(tree)
    iomem = root / "proc/iomem"
    iomem.write_text(iomem.read_text().replace("1a000000-1b002fff : Kernel code",
                                               "2a000000-2b002fff : Kernel code"))
    assert replay_converged(["reconcile", "--root", str(root)]) == 0


def test_another_config_file_is_another_invocation(tree: Tree) -> None:
    root = converged(tree)
    other = root / "other.yaml"
    other.write_text((root / "etc/pmemd.yaml").read_text())
    assert replay_converged(["reconcile", "--root", str(root), "--config", str(other)]) is None


def test_a_run_that_changes_something_removes_the_stamp(tree: Tree) -> None:
    root = converged(tree)
    write_config(root, config_text(("data", "2G", "12G")))
    assert run_pmemd("reconcile", "--root", str(root)).returncode == 5
    assert not (root / STAMP).exists()
