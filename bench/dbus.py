"""What pmemd's D-Bus service costs per call, against a trivial dbus-next echo service
measured in the same run, on the same private bus (pmemd's shipped policy), with the
same client.

* latency: one call at a time, median and p99, for GetPlan (the whole plan as JSON) and a
  property read (Manager.State); the echo service's Echo(s) and property read alongside,
  Echo with a short string and with a string as long as the plan;
* throughput: calls per second with several clients, each on its own connection;
* idle RSS of each service.

    .venv/bin/python bench/dbus.py [--calls N] [--seconds S] [--clients C]

Prints figures and ratios (pmemd / echo); asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dbus_next.aio.message_bus import MessageBus  # noqa: E402

from bench.echo_service import INTERFACE as ECHO_INTERFACE  # noqa: E402
from bench.echo_service import NAME as ECHO_NAME  # noqa: E402
from bench.echo_service import PATH as ECHO_PATH  # noqa: E402
from tests.service.conftest import make_machine  # noqa: E402
from tests.service.harness import (  # noqa: E402
    BUS_NAME,
    PrivateBus,
    Running,
    acall,
    connect,
    rss_kib,
    start_service,
    wait_for_owner,
    world_readable_dir,
)

ECHO_POLICY = f"""  <policy user="root"><allow own="{ECHO_NAME}"/></policy>
  <policy context="default"><allow send_destination="{ECHO_NAME}"/></policy>
"""
PROPS = "org.freedesktop.DBus.Properties"

Call = Callable[[MessageBus], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    name: str
    call: Call


def cases(plan_text: str) -> list[tuple[Case, Case]]:
    """(pmemd, echo) pairs."""
    async def get_plan(bus: MessageBus) -> None:
        (await acall(bus, "/io/pmemd1", "io.pmemd1.Manager", "GetPlan")).ok()

    async def get_state(bus: MessageBus) -> None:
        (await acall(bus, "/io/pmemd1", PROPS, "Get", "ss",
                     ["io.pmemd1.Manager", "State"])).ok()

    def echo(text: str) -> Call:
        async def run(bus: MessageBus) -> None:
            (await acall(bus, ECHO_PATH, ECHO_INTERFACE, "Echo", "s", [text],
                         destination=ECHO_NAME)).ok()
        return run

    async def echo_property(bus: MessageBus) -> None:
        (await acall(bus, ECHO_PATH, PROPS, "Get", "ss", [ECHO_INTERFACE, "Value"],
                     destination=ECHO_NAME)).ok()

    return [
        (Case("GetPlan", get_plan), Case("Echo(short)", echo("converged"))),
        (Case("GetPlan", get_plan), Case(f"Echo({len(plan_text)} B)", echo(plan_text))),
        (Case("Get(State)", get_state), Case("Get(Value)", echo_property)),
    ]


async def latencies(address: str, call: Call, count: int) -> list[float]:
    bus = await connect(address)
    try:
        for _ in range(min(200, count)):  # warm up
            await call(bus)
        out = []
        for _ in range(count):
            start = time.perf_counter()
            await call(bus)
            out.append(time.perf_counter() - start)
        return out
    finally:
        bus.disconnect()  # type: ignore[no-untyped-call]


async def throughput(address: str, call: Call, seconds: float, clients: int) -> float:
    buses = [await connect(address) for _ in range(clients)]
    done = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def client(bus: MessageBus) -> None:
        nonlocal done
        while loop.time() < end:
            await call(bus)
            done += 1

    started = loop.time()
    await asyncio.gather(*(client(bus) for bus in buses))
    elapsed = loop.time() - started
    for bus in buses:
        bus.disconnect()  # type: ignore[no-untyped-call]
    return done / elapsed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(latency: list[float], rates: list[float]) -> tuple[float, float, float]:
    """Median and p99 latency in µs, and the median of the rounds' calls per second."""
    return (statistics.median(latency) * 1e6, percentile(latency, 0.99) * 1e6,
            statistics.median(rates))


def start_echo(bus: PrivateBus) -> Running:
    process = subprocess.Popen([sys.executable, str(REPO / "bench/echo_service.py"),
                                bus.address], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    wait_for_owner(bus.address, ECHO_NAME, process=process)
    return Running(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per latency case")
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput case")
    parser.add_argument("--clients", type=int, default=8, help="connections for throughput")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternations of pmemd and echo per case")
    args = parser.parse_args()

    directory = world_readable_dir("pmemd-bench-")
    bus = PrivateBus(directory, policy=ECHO_POLICY).start()
    services: list[Running] = []
    try:
        root = make_machine(directory)
        pmemd = start_service(bus, root)
        services.append(pmemd)
        echo = start_echo(bus)
        services.append(echo)
        idle = {"pmemd": rss_kib(pmemd.process.pid), "echo": rss_kib(echo.process.pid)}
        from tests.service.harness import call
        plan_text = call(bus.address, "/io/pmemd1", "io.pmemd1.Manager", "GetPlan").ok()[0]
        json.loads(plan_text)

        print(f"pmemd {BUS_NAME} over {root} (qemu-2g-pmem, 2 regions) vs {ECHO_NAME}; "
              f"private dbus-daemon, dbus-next client, Python {sys.version.split()[0]}")
        print(f"latency: {args.calls} sequential calls per case; throughput: {args.clients} "
              f"connections for {args.seconds:g}s per case; in {args.rounds} rounds "
              "alternating pmemd and echo\n")
        header = (f"{'pmemd call':<12} {'median µs':>10} {'p99 µs':>9} {'calls/s':>9}   "
                  f"{'echo call':<14} {'median µs':>10} {'p99 µs':>9} {'calls/s':>9}   "
                  f"{'ratio med':>9} {'ratio p99':>9} {'ratio c/s':>9}")
        print(header)
        print("-" * len(header))
        for ours, theirs in cases(plan_text):
            # Rounds alternate pmemd and echo so both see the same machine load.
            lat: dict[str, list[float]] = {ours.name: [], theirs.name: []}
            rate: dict[str, list[float]] = {ours.name: [], theirs.name: []}
            for _ in range(args.rounds):
                for case in (ours, theirs):
                    lat[case.name] += asyncio.run(latencies(bus.address, case.call,
                                                            args.calls // args.rounds))
                    rate[case.name].append(asyncio.run(throughput(
                        bus.address, case.call, args.seconds / args.rounds, args.clients)))
            m1, p1, r1 = summary(lat[ours.name], rate[ours.name])
            m2, p2, r2 = summary(lat[theirs.name], rate[theirs.name])
            print(f"{ours.name:<12} {m1:>10.0f} {p1:>9.0f} {r1:>9.0f}   "
                  f"{theirs.name:<14} {m2:>10.0f} {p2:>9.0f} {r2:>9.0f}   "
                  f"{m1 / m2:>9.2f} {p1 / p2:>9.2f} {r1 / r2:>9.2f}")
        after = rss_kib(pmemd.process.pid)
        print(f"\nidle RSS: pmemd {idle['pmemd'] / 1024:.1f} MiB, echo {idle['echo'] / 1024:.1f} "
              f"MiB (ratio {idle['pmemd'] / idle['echo']:.2f}); pmemd after the runs "
              f"{after / 1024:.1f} MiB")
    finally:
        for service in services:
            service.stop()
        bus.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
