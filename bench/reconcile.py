#!/usr/bin/python3
"""What every boot pays: ``pmemd reconcile`` on a converged machine, timed against bare
interpreter start-up (``python3 -c pass``) in the same run. Target: under 3x.

The machine is the reference procedure's 16 GiB server, booted with memmap=4G!12G, with
the Debian 12 GRUB files the real update-grub generated for it (tests/fixtures/bootloader/
debian12 + debian12-memmap). pmemd runs as /usr/bin/pmemd runs it: Debian's python3 and the
console script an installer writes for ``pmemd = pmemd.cli.entry:main``, pmemd byte-compiled.
The converged run also checks the generator's cache (pmemd.fastpath.generator_cache), as at
every boot.

Two numbers: the converged no-op at boot (the stamp written by the previous converged run
is valid: this is every boot; each timed run gets a new boot id first, so it also records
the new boot in pmemd's boot history, as a real boot does), and the same reconcile with the
stamp removed first (the full path: config parse, facts, detection, grub.cfg, plan).

    bench/reconcile.py [--runs N] [--python /usr/bin/python3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MACHINE = REPO / "examples" / "machines" / "server-16g-memmap"
BOOTLOADER = REPO / "tests" / "fixtures" / "bootloader"
CONFIG = """version: 1
boot:
  bootloader: auto
  kaslr: warn
regions:
  - name: data
    size: 4G
    offset: 12G
"""
# What an installer (pip, Debian's pybuild via `installer`) writes as /usr/bin/pmemd.
CONSOLE_SCRIPT = """# -*- coding: utf-8 -*-
import re
import sys
from pmemd.cli.entry import main
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit(main())
"""


def build(directory: Path) -> Path:
    root = directory / "machine"
    shutil.copytree(MACHINE, root, symlinks=True)
    for layer in ("debian12", "debian12-memmap"):
        shutil.copytree(BOOTLOADER / layer, root, dirs_exist_ok=True)
    (root / "etc" / "pmemd.yaml").write_text(CONFIG)
    new_boot(root)
    return root


def new_boot(root: Path) -> None:
    """What a reboot changes for the fast path: the kernel's boot id."""
    boot_id = root / "proc" / "sys" / "kernel" / "random" / "boot_id"
    boot_id.parent.mkdir(parents=True, exist_ok=True)
    boot_id.write_text(f"{uuid.uuid4()}\n")


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - start, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--python", default="/usr/bin/python3")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # Byte-compiled, as an installed package is (a PYTHONDONTWRITEBYTECODE environment
    # would otherwise time the compiler at every run).
    subprocess.run([args.python, "-m", "compileall", "-q", str(REPO / "pmemd")], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="pmemd-bench-") as work:
        root = build(Path(work))
        script = Path(work) / "pmemd"
        script.write_text(CONSOLE_SCRIPT)
        pmemd = [args.python, str(script), "reconcile", "--root", str(root)]
        stamp = root / "var" / "lib" / "pmemd" / "converged"
        first = subprocess.run(pmemd, env=env, capture_output=True, text=True, check=False)
        if first.returncode != 0 or not stamp.exists():
            print(f"not converged (exit {first.returncode}):\n{first.stdout}{first.stderr}")
            return 1
        baseline, fast, full = [], [], []
        for _ in range(args.runs):  # interleaved, so load changes hit all three alike
            baseline.append(timed([args.python, "-c", "pass"], env)[0])
            new_boot(root)
            seconds, done = timed(pmemd, env)
            if done.returncode != 0 or done.stdout != first.stdout:
                print(f"the converged run changed: exit {done.returncode}\n{done.stdout}")
                return 1
            fast.append(seconds)
            stamp.unlink()
            seconds, done = timed(pmemd, env)
            if done.returncode != 0 or done.stdout != first.stdout or not stamp.exists():
                print(f"the full run changed: exit {done.returncode}\n{done.stdout}")
                return 1
            full.append(seconds)
    base = statistics.median(baseline)
    print(f"python3 -c pass             median {base * 1000:6.1f} ms  (min "
          f"{min(baseline) * 1000:.1f})")
    for name, samples in (("converged reconcile (boot)", fast), ("full reconcile (no stamp)",
                                                                 full)):
        median = statistics.median(samples)
        print(f"{name:27} median {median * 1000:6.1f} ms  (min {min(samples) * 1000:.1f})"
              f"  ratio {median / base:.2f}x")
    ratio = statistics.median(fast) / base
    print(f"every boot pays {ratio:.2f}x interpreter start-up: target < 3x "
          f"{'met' if ratio < 3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
