"""How long pmemd-generator takes on every boot, against bare interpreter start-up.

    .venv/bin/python bench/generator.py [--runs N] [--python PATH] [--importtime]

Runs, interleaved so that load on the machine hits both alike, ``PYTHON -c pass`` and
``PYTHON systemd/pmemd-generator`` on a 16-region config (tests/golden/sixteen-regions:
12 pinned regions and 4 that pmemd places, so the firmware map is read and the planner
runs) on the 64 GiB example machine, each into a fresh output directory. Prints the
medians and their ratio; the target is under 3x. Both run with the same interpreter
(default /usr/bin/python3, what the installed generator's #! names) and the same
environment (PYTHONPATH=the repository); the installed generator also passes -I, which
only makes it faster.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pmemd.machine import GENERATOR_DIRS, Machine  # noqa: E402

CONFIG = REPO / "tests" / "golden" / "sixteen-regions" / "pmemd.yaml"
MACHINE = REPO / "examples" / "machines" / "server-64g-2node"
GENERATOR = REPO / "systemd" / "pmemd-generator"
TARGET = 3.0
EXPECTED_MOUNTS = 16


def _root(base: Path) -> Path:
    root = base / "root"
    machine = Machine(root)
    machine.config.parent.mkdir(parents=True)
    shutil.copyfile(CONFIG, machine.config)
    machine.path("/sys").symlink_to(MACHINE / "sys")
    return root


def _tmpfs() -> str | None:
    """A tmpfs for the output directories: systemd gives generators directories in /run,
    which is a tmpfs; writing 80 files to a disk would time the disk, not the generator."""
    from pmemd.dax import read_mounts

    machine = Machine()
    candidates = {str(machine.path("/run")), str(machine.dev / "shm")}
    for mount in read_mounts(machine):
        if mount.fstype == "tmpfs" and mount.mountpoint in candidates and os.access(
                mount.mountpoint, os.W_OK):
            return mount.mountpoint
    return None


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def _reset(dirs: list[Path]) -> None:
    for directory in dirs:
        shutil.rmtree(directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=60, help="timed runs of each (default 60)")
    parser.add_argument("--python", default="/usr/bin/python3" if Path(
        "/usr/bin/python3").exists() else sys.executable, help="interpreter for both")
    parser.add_argument("--importtime", action="store_true",
                        help="also show the generator's slowest imports (python -X importtime)")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "SYSTEMD_IN_INITRD": "0"}
    tmpfs = _tmpfs()
    with tempfile.TemporaryDirectory(prefix="pmemd-bench-") as tmp, \
            tempfile.TemporaryDirectory(prefix="pmemd-bench-out-", dir=tmpfs) as out:
        root = _root(Path(tmp))
        dirs = [Path(out) / Path(d).name for d in GENERATOR_DIRS]
        generator = [args.python, str(GENERATOR), "--root", str(root), *map(str, dirs)]
        baseline = [args.python, "-c", "pass"]
        for _ in range(3):  # warm caches and byte-compiled files; not timed
            _reset(dirs)
            _timed(generator, env)
            _timed(baseline, env)
        mounts = sorted(p.name for p in dirs[0].glob("*.mount"))
        if len(mounts) != EXPECTED_MOUNTS:
            print(f"the generator wrote {len(mounts)} mount units, expected "
                  f"{EXPECTED_MOUNTS}: not timing a broken run", file=sys.stderr)
            return 1
        # What any reader of pmemd.yaml pays: the config parser (PyYAML, the dataclass
        # model) and the machine paths. Shown so the generator's own share is visible.
        floor = [args.python, "-c", "import pmemd.config, pmemd.machine"]
        base_times, gen_times, floor_times = [], [], []
        for _ in range(args.runs):
            _reset(dirs)
            gen_times.append(_timed(generator, env))
            base_times.append(_timed(baseline, env))
            floor_times.append(_timed(floor, env))
        if args.importtime:
            _reset(dirs)
            done = subprocess.run([args.python, "-X", "importtime", *generator[1:]], env=env,
                                  capture_output=True, text=True, check=True)
            rows = [line.split("|") for line in done.stderr.splitlines()
                    if line.startswith("import time:") and "cumulative" not in line]
            rows.sort(key=lambda r: -int(r[1]))
            print("slowest imports (cumulative us, module):")
            for row in rows[:15]:
                print(f"  {int(row[1]):>7}  {row[2].rstrip()}")
    base = statistics.median(base_times) * 1000
    gen = statistics.median(gen_times) * 1000
    low = statistics.median(floor_times) * 1000
    ratio = gen / base
    print(f"interpreter: {args.python}, {args.runs} interleaved runs each, medians; "
          f"output on {tmpfs or 'the disk (no tmpfs found)'}")
    print(f"  {'python -c pass':<45} {base:7.1f} ms  1.00x")
    print(f"  {'python -c import pmemd.config, pmemd.machine':<45} {low:7.1f} ms  "
          f"{low / base:.2f}x")
    print(f"  {f'pmemd-generator, {EXPECTED_MOUNTS} regions':<45} {gen:7.1f} ms  {ratio:.2f}x")
    print(f"ratio: {ratio:.2f}x (target < {TARGET:g}x: {'met' if ratio < TARGET else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
