"""Changes from several processes at once never lose what pmemd owns: concurrent
``pmemd reconcile`` runs (two configs alternating) and ``reconcile --remove-all`` on one
machine, for a bounded time; afterwards ``state.json`` records exactly the options the boot
configuration carries, and a final reconcile converges and then changes nothing. And a
change that has to wait says for whom, and gives up after a bounded time.

Without pmemd's change lock the runs interleave: each reads state.json and the loader
entries, each writes them, and an option written by one is recorded by none — pmemd then
treats its own option as foreign, forever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pmemd.core.cmdline import args_of
from pmemd.machine.lock import change_lock
from pmemd.machine.root import Machine
from tests.boot.conftest import config_text
from tests.conftest import REPO, run_pmemd
from tests.reliability import Figure

Tree = Callable[..., Path]
ENTRIES = "boot/efi/loader/entries"
WRITERS = 8
SECONDS = 8.0
CONFIG_A = config_text(("a", "512M", "4G"))
CONFIG_B = config_text(("b", "256M", "6G"), kaslr="disable")


def _pmemd_options(root: Path) -> set[str]:
    """Every option of pmemd's kind (memmap=, nokaslr) the boot configuration carries:
    the entries' options lines and /etc/kernel/cmdline."""
    texts = [line.partition("options")[2] for p in sorted((root / ENTRIES).glob("*.conf"))
             for line in p.read_text().splitlines() if line.startswith("options")]
    cmdline = root / "etc/kernel/cmdline"
    if cmdline.exists():
        texts.append(cmdline.read_text())
    return {arg for text in texts for arg in args_of(text)
            if arg.startswith("memmap=") or arg == "nokaslr"}


def _writer(root: Path, index: int, until: float) -> subprocess.Popen[str]:
    """One writer: reconcile with config A or B, or remove-all, again and again."""
    config = root / f"etc/pmemd-{'ab'[index % 2]}.yaml"
    argv = ["reconcile", "--root", str(root)]
    argv += ["--remove-all"] if index % 4 == 3 else ["--config", str(config)]
    script = (f"import subprocess, sys, time\n"
              f"runs = 0\n"
              f"while time.monotonic() < {until}:\n"
              f"    subprocess.run([sys.executable, '-m', 'pmemd', *{argv!r}],\n"
              f"                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
              f"    runs += 1\n"
              f"print(runs)\n")
    return subprocess.Popen([sys.executable, "-c", script], cwd=REPO, text=True,
                            stdout=subprocess.PIPE)


def test_concurrent_changes_lose_nothing(tree: Tree,
                                        reliability: Callable[[Figure], None]) -> None:
    root = tree("debian12-systemd-boot", config=CONFIG_A)
    (root / "etc/pmemd-a.yaml").write_text(CONFIG_A)
    (root / "etc/pmemd-b.yaml").write_text(CONFIG_B)
    until = time.monotonic() + SECONDS
    writers = [_writer(root, i, until) for i in range(WRITERS)]
    runs = 0
    for writer in writers:
        out, _ = writer.communicate(timeout=SECONDS + 120)
        assert writer.returncode == 0
        runs += int(out)
    state = json.loads((Machine(root).state_file).read_text())
    assert set(state["owned"]) == _pmemd_options(root), state
    first = run_pmemd("reconcile", "--root", str(root), "--config", str(root / "etc/pmemd-a.yaml"))
    assert first.returncode in (0, 5), first.stderr
    assert "left alone" not in first.stdout  # none of pmemd's own options looks foreign
    again = run_pmemd("reconcile", "--root", str(root), "--config", str(root / "etc/pmemd-a.yaml"))
    assert "Nothing to change in the bootloader configuration." in again.stdout, again.stdout
    assert _pmemd_options(root) == {"memmap=512M!4G"}
    reliability(Figure("races", "pmemd reconcile (2 configs) and --remove-all, "
                       "systemd-boot root", runs, "runs", note=f"{WRITERS} writers x "
                       f"{SECONDS:g} s"))


def test_a_change_that_must_wait_says_for_whom_and_then_runs(tree: Tree) -> None:
    root = tree("debian12-systemd-boot", config=CONFIG_A)
    machine = Machine(root)
    with change_lock(machine, "a test holding the lock", wait=0):
        run = subprocess.Popen([sys.executable, "-m", "pmemd", "reconcile", "--root",
                                str(root)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert run.poll() is None  # waiting
    _, err = run.communicate(timeout=60)
    assert run.returncode == 5, err
    assert f"waiting for pmemd's lock (pid {os.getpid()}: a test holding the lock)" in err
    assert "memmap=512M!4G" in _pmemd_options(root)
