"""Changes from several processes at once never lose what pmemd owns: concurrent
``pmemd reconcile`` runs (two configs alternating), ``reconcile --remove-all`` and the
D-Bus service's ``SetConfig`` (two configs alternating, applied) and ``Apply`` on one
machine, for a bounded time; afterwards ``state.json`` records exactly the options the boot
configuration carries, and a final reconcile converges and then changes nothing. And a
change that has to wait says for whom, and gives up after a bounded time.

Without pmemd's change lock the runs interleave: each reads state.json and the loader
entries, each writes them, and an option written by one is recorded by none — pmemd then
treats its own option as foreign, forever."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
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
from tests.service.harness import PrivateBus, acall, connect, serving, world_readable_dir

Tree = Callable[..., Path]
ENTRIES = "boot/efi/loader/entries"
WRITERS = 8  # of each kind: reconcile, --remove-all, SetConfig, Apply
SECONDS = 8.0
CONFIG_A = config_text(("a", "512M", "4G"))
CONFIG_B = config_text(("b", "256M", "6G"), kaslr="disable")
MANAGER = "/io/pmemd1"
# What a D-Bus writer may be told besides success: another change holds the lock.
REFUSED = {"io.pmemd1.Error.Busy"}


def _pmemd_args_per_line(root: Path) -> list[list[str]]:
    """The options of pmemd's kind (memmap=, nokaslr) of each place the boot configuration
    keeps a command line: every entry's options line, and /etc/kernel/cmdline."""
    texts = [line.partition("options")[2] for p in sorted((root / ENTRIES).glob("*.conf"))
             for line in p.read_text().splitlines() if line.startswith("options")]
    cmdline = root / "etc/kernel/cmdline"
    if cmdline.exists():
        texts.append(cmdline.read_text())
    return [[a for a in args_of(text) if a.startswith("memmap=") or a == "nokaslr"]
            for text in texts]


def _pmemd_options(root: Path) -> set[str]:
    """Every option of pmemd's kind the boot configuration carries."""
    return {arg for line in _pmemd_args_per_line(root) for arg in line}


def _duplicated(root: Path) -> list[str]:
    """Options of pmemd's kind that one options line (or /etc/kernel/cmdline) carries
    twice."""
    return [a for line in _pmemd_args_per_line(root) for a in sorted(set(line))
            if line.count(a) > 1]


def _writer(root: Path, index: int, until: float) -> subprocess.Popen[str]:
    """One writer: reconcile with config A or B (even ``index``: A on every other one),
    or remove-all (odd), again and again."""
    config = root / f"etc/pmemd-{'ab'[index // 2 % 2]}.yaml"
    argv = ["reconcile", "--root", str(root)]
    argv += ["--remove-all"] if index % 2 else ["--config", str(config)]
    script = (f"import subprocess, sys, time\n"
              f"runs = 0\n"
              f"while time.monotonic() < {until}:\n"
              f"    subprocess.run([sys.executable, '-m', 'pmemd', *{argv!r}],\n"
              f"                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
              f"    runs += 1\n"
              f"print(runs)\n")
    return subprocess.Popen([sys.executable, "-c", script], cwd=REPO, text=True,
                            stdout=subprocess.PIPE)


async def _bus_writers(address: str, until: float) -> tuple[int, int, list[str]]:
    """2 x WRITERS D-Bus clients until ``until``: half replace the config (A and B in
    turn) and apply it, half call Apply; (changes made, refused as Busy, anything else)."""
    made = refused = 0
    other: list[str] = []

    async def writer(index: int) -> None:
        nonlocal made, refused
        bus = await connect(address)
        turn = index
        try:
            while time.monotonic() < until:
                if index % 2 == 0:
                    config = CONFIG_A if turn % 2 == 0 else CONFIG_B
                    reply = await acall(bus, MANAGER, "io.pmemd1.Manager", "SetConfig", "sb",
                                        [config, True])
                else:
                    reply = await acall(bus, MANAGER, "io.pmemd1.Manager", "Apply", "b",
                                        [False])
                turn += 1
                if reply.error is None:
                    made += 1
                elif reply.error in REFUSED:
                    refused += 1
                    await asyncio.sleep(0.05)
                else:
                    other.append(f"{reply.error}: {reply.text}")
        finally:
            bus.disconnect()  # type: ignore[no-untyped-call]

    await asyncio.gather(*(writer(i) for i in range(2 * WRITERS)))
    return made, refused, other


def test_concurrent_changes_lose_nothing(tree: Tree,
                                        reliability: Callable[[Figure], None]) -> None:
    root = tree("debian12-systemd-boot", config=CONFIG_A)
    (root / "etc/pmemd-a.yaml").write_text(CONFIG_A)
    (root / "etc/pmemd-b.yaml").write_text(CONFIG_B)
    directory = world_readable_dir("pmemd-races-")
    bus = PrivateBus(directory).start()
    try:
        with serving(bus, root):
            until = time.monotonic() + SECONDS
            writers = [_writer(root, i, until) for i in range(2 * WRITERS)]
            made, refused, other = asyncio.run(_bus_writers(bus.address, until))
            runs = 0
            for writer in writers:
                out, _ = writer.communicate(timeout=SECONDS + 120)
                assert writer.returncode == 0
                runs += int(out)
    finally:
        bus.stop()
        shutil.rmtree(directory, ignore_errors=True)
    assert not other, other[:5]
    assert made > 0  # the service really changed things between the CLI runs
    state = json.loads((Machine(root).state_file).read_text())
    assert set(state["owned"]) == _pmemd_options(root), state
    assert len(state["owned"]) == len(set(state["owned"])), state
    assert not _duplicated(root)
    first = run_pmemd("reconcile", "--root", str(root), "--config", str(root / "etc/pmemd-a.yaml"))
    assert first.returncode in (0, 5), first.stderr
    assert "left alone" not in first.stdout  # none of pmemd's own options looks foreign
    again = run_pmemd("reconcile", "--root", str(root), "--config", str(root / "etc/pmemd-a.yaml"))
    assert "Nothing to change in the bootloader configuration." in again.stdout, again.stdout
    assert _pmemd_options(root) == {"memmap=512M!4G"}
    reliability(Figure("races", "pmemd reconcile (2 configs), --remove-all, D-Bus SetConfig "
                       "(2 configs) and Apply, systemd-boot root", runs + made,
                       "changes made", note=f"{WRITERS} writers of each kind x "
                       f"{SECONDS:g} s; {runs} CLI runs, {made} D-Bus changes, {refused} "
                       f"told Busy"))


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
