"""How long pmemd-generator takes on every boot, against bare interpreter start-up.

    .venv/bin/python bench/generator.py [--runs N] [--python PATH] [--importtime]

Runs, interleaved so that load on the machine hits all alike, ``PYTHON -c pass`` and
``PYTHON systemd/pmemd-generator`` on a 16-region config (tests/golden/sixteen-regions:
12 pinned regions and 4 that pmemd places, so the firmware map is read and the planner
runs) on the 64 GiB example machine, each into a fresh output directory, twice:

* cold: no generator cache (the first boot after a config change that nothing else saw,
  or /var not mounted at generator time): the full path parses the config and renders;
* warm: the cache pmemd reconcile and the D-Bus service keep
  (pmemd.fastpath.generator_cache) is present and current: every boot after the first.

Prints the medians and their ratios to the same run's baseline; the target is under 3x.
All run with the same interpreter (default /usr/bin/python3, what the installed
generator's #! names) and the same environment (PYTHONPATH=the repository); pmemd is
byte-compiled first, as an installed package is. The installed generator also passes -I,
which only makes it faster.
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

from pmemd.machine.root import GENERATOR_DIRS, Machine  # noqa: E402

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
    from pmemd.machine.facts import read_mounts

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


def _make_cache(python: str, root: Path, env: dict[str, str]) -> None:
    """What pmemd reconcile does at boot: write the generator's cache for ``root``."""
    done = subprocess.run([python, "-m", "pmemd", "generator-cache", "--root", str(root)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"pmemd generator-cache failed:\n{done.stdout}{done.stderr}")


def _imports(python: str, argv: list[str], env: dict[str, str]) -> list[list[str]]:
    done = subprocess.run([python, "-X", "importtime", *argv], env=env,
                          capture_output=True, text=True, check=True)
    return [line.split("|") for line in done.stderr.splitlines()
            if line.startswith("import time:") and "cumulative" not in line]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=60, help="timed runs of each (default 60)")
    parser.add_argument("--python", default="/usr/bin/python3" if Path(
        "/usr/bin/python3").exists() else sys.executable, help="interpreter for all")
    parser.add_argument("--importtime", action="store_true",
                        help="also show the cold generator's slowest imports")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "SYSTEMD_IN_INITRD": "0"}
    subprocess.run([args.python, "-m", "compileall", "-q", str(REPO / "pmemd")], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    tmpfs = _tmpfs()
    with tempfile.TemporaryDirectory(prefix="pmemd-bench-") as tmp, \
            tempfile.TemporaryDirectory(prefix="pmemd-bench-out-", dir=tmpfs) as out:
        cold_root, warm_root = _root(Path(tmp) / "cold"), _root(Path(tmp) / "warm")
        _make_cache(args.python, warm_root, env)
        dirs = {name: [Path(out) / name / Path(d).name for d in GENERATOR_DIRS]
                for name in ("cold", "warm")}
        cold = [args.python, str(GENERATOR), "--root", str(cold_root), *map(str, dirs["cold"])]
        warm = [args.python, str(GENERATOR), "--root", str(warm_root), *map(str, dirs["warm"])]
        baseline = [args.python, "-c", "pass"]
        # What any reader of pmemd.yaml pays: the config parser (PyYAML, the dataclass
        # model) and the machine paths. Shown so the cold generator's own share is visible.
        floor = [args.python, "-c", "import pmemd.core.config, pmemd.machine.root"]
        for _ in range(3):  # warm the page cache; not timed
            for name, argv in (("cold", cold), ("warm", warm)):
                _reset(dirs[name])
                _timed(argv, env)
            _timed(baseline, env)
        for name in ("cold", "warm"):
            mounts = sorted(p.name for p in dirs[name][0].glob("*.mount"))
            if len(mounts) != EXPECTED_MOUNTS:
                print(f"the {name} generator wrote {len(mounts)} mount units, expected "
                      f"{EXPECTED_MOUNTS}: not timing a broken run", file=sys.stderr)
                return 1
        if _snapshot(dirs["cold"][0]) != _snapshot(dirs["warm"][0]):
            print("the cached output differs from the computed one", file=sys.stderr)
            return 1
        _reset(dirs["warm"])
        if any(row[2].strip() == "yaml" for row in _imports(args.python, warm[1:], env)):
            print("the warm run imported PyYAML: the cache missed", file=sys.stderr)
            return 1
        times: dict[str, list[float]] = {"base": [], "cold": [], "warm": [], "floor": []}
        for _ in range(args.runs):
            _reset(dirs["cold"] + dirs["warm"])
            times["cold"].append(_timed(cold, env))
            times["base"].append(_timed(baseline, env))
            times["warm"].append(_timed(warm, env))
            times["floor"].append(_timed(floor, env))
        if args.importtime:
            _reset(dirs["cold"])
            slowest = sorted(_imports(args.python, cold[1:], env), key=lambda r: -int(r[1]))
            print("cold generator, slowest imports (cumulative us, module):")
            for row in slowest[:15]:
                print(f"  {int(row[1]):>7}  {row[2].rstrip()}")
    ms = {name: statistics.median(samples) * 1000 for name, samples in times.items()}
    base = ms["base"]
    print(f"interpreter: {args.python}, {args.runs} interleaved runs each, medians; "
          f"output on {tmpfs or 'the disk (no tmpfs found)'}")
    rows = [("python -c pass", ms["base"]),
            ("python -c import pmemd.core.config, pmemd.machine.root", ms["floor"]),
            (f"pmemd-generator, {EXPECTED_MOUNTS} regions, cold (no cache)", ms["cold"]),
            (f"pmemd-generator, {EXPECTED_MOUNTS} regions, warm (cache)", ms["warm"])]
    for label, value in rows:
        print(f"  {label:<52} {value:7.1f} ms  {value / base:.2f}x")
    for name in ("warm", "cold"):
        ratio = ms[name] / base
        print(f"{name} ratio: {ratio:.2f}x (target < {TARGET:g}x: "
              f"{'met' if ratio < TARGET else 'NOT met'})")
    return 0


def _snapshot(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): os.readlink(p) if p.is_symlink() else p.read_text()
            for p in sorted(directory.rglob("*")) if p.is_symlink() or p.is_file()}


if __name__ == "__main__":
    sys.exit(main())
