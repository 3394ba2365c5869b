#!/usr/bin/python3
"""What an admin's ``pmemctl status`` costs, as a whole process, against bare interpreter
start-up (``python3 -c pass``) in the same run. Target: under 5x.

The service runs on a private ``dbus-daemon`` with pmemd's shipped policy (the D-Bus
tests' harness), over the example machine the D-Bus tests use, and is warmed up first (a
status query is answered from the service's last reading). pmemctl runs as
/usr/bin/pmemctl runs it: Debian's python3 and the console script an installer writes for
``pmemctl = pmemd.cli.ctl:main``, pmemd byte-compiled. Beside it, interleaved:

* ``busctl get-property`` of the Manager's State: the C floor for one D-Bus round trip;
* ``import dbus_next.aio, asyncio``: what the client cost to import before it went to
  sd-bus (for the record).

    bench/pmemctl.py [--runs N] [--python /usr/bin/python3]
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

from tests.service.conftest import CONVERGED, make_machine  # noqa: E402
from tests.service.harness import PrivateBus, start_service, world_readable_dir  # noqa: E402

TARGET = 5.0
# What an installer (pip, Debian's pybuild via `installer`) writes as /usr/bin/pmemctl.
CONSOLE_SCRIPT = """# -*- coding: utf-8 -*-
import re
import sys
from pmemd.cli.ctl import main
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit(main())
"""


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="timed runs of each (default 40)")
    parser.add_argument("--python", default="/usr/bin/python3" if Path(
        "/usr/bin/python3").exists() else sys.executable, help="interpreter for all")
    args = parser.parse_args()
    subprocess.run([args.python, "-m", "compileall", "-q", str(REPO / "pmemd")], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
    directory = world_readable_dir("pmemd-bench-ctl-")
    bus = PrivateBus(directory).start()
    try:
        service = start_service(bus, make_machine(directory, CONVERGED))  # never idles out
        with tempfile.TemporaryDirectory(prefix="pmemd-bench-") as tmp:
            script = Path(tmp) / "pmemctl"
            script.write_text(CONSOLE_SCRIPT)
            env = {**os.environ, "PYTHONPATH": str(REPO),
                   "DBUS_SYSTEM_BUS_ADDRESS": bus.address}
            commands = {
                "python3 -c pass": [args.python, "-c", "pass"],
                "pmemctl status": [args.python, str(script), "status"],
                "busctl get-property … State": [
                    "busctl", "get-property", "io.pmemd1", "/io/pmemd1", "io.pmemd1.Manager",
                    "State"],
                "python3 -c 'import dbus_next.aio, asyncio'": [
                    args.python, "-c", "import dbus_next.aio, asyncio"],
            }
            for _ in range(3):  # warm the page cache and the service; not timed
                for argv in commands.values():
                    timed(argv, env)
            times: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(args.runs):
                for name, argv in commands.items():
                    times[name].append(timed(argv, env))
        service.stop()
    finally:
        bus.stop()
        shutil.rmtree(directory, ignore_errors=True)
    ms = {name: statistics.median(samples) * 1000 for name, samples in times.items()}
    base = ms["python3 -c pass"]
    print(f"interpreter: {args.python}, {args.runs} interleaved runs each, medians; "
          "the service on a private bus")
    for name, value in ms.items():
        print(f"  {name:<44} {value:7.1f} ms  {value / base:.2f}x")
    ratio = ms["pmemctl status"] / base
    print(f"pmemctl status: {ratio:.2f}x (target < {TARGET:g}x: "
          f"{'met' if ratio < TARGET else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
