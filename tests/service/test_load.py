"""Property reads under load: eight clients read the Manager's properties without pause
while another replaces the config and applies it again and again, each Apply waiting on a
bootloader tool that takes a second (the slow grubby). Every read is answered, and
correctly; the reads' p99 is recorded in the README's Reliability table (a figure, not a
pass mark: the only bound asserted is a generous safety net)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dbus_next.aio.message_bus import MessageBus

from tests.reliability import Figure
from tests.service.harness import PrivateBus, acall, connect, serving
from tests.service.slow import FIRST, SECOND, entry_options, grubby_runs, slow_grubby_machine

MANAGER = "/io/pmemd1"
PROPS = "org.freedesktop.DBus.Properties"
READERS = 8
APPLIES = 4  # SetConfig with apply, alternating two configs: each runs grubby
DELAY = 1.0  # seconds each grubby run takes
STATES = {"converged", "changes-pending", "reboot-required", "degraded", "invalid-config"}
SAFETY = 1.0  # seconds: a property read slower than this is a service that stalled


@pytest.fixture
def slow_root(workdir: Path) -> Iterator[Path]:
    with slow_grubby_machine(workdir / "fedora", DELAY) as root:
        yield root


async def reader(bus: MessageBus, stop: asyncio.Event, times: list[float],
                 wrong: list[str]) -> None:
    loop = asyncio.get_running_loop()
    get = True
    while not stop.is_set():
        start = loop.time()
        if get:
            reply = await acall(bus, MANAGER, PROPS, "Get", "ss", ["io.pmemd1.Manager", "State"])
            value = reply.body[0].value if reply.body else None
        else:
            reply = await acall(bus, MANAGER, PROPS, "GetAll", "s", ["io.pmemd1.Manager"])
            value = reply.body[0]["State"].value if reply.body else None
        times.append(loop.time() - start)
        if value not in STATES:
            wrong.append(str(reply))
        get = not get


async def applier(bus: MessageBus, stop: asyncio.Event, results: list[str]) -> None:
    try:
        for index in range(APPLIES):
            config = SECOND if index % 2 == 0 else FIRST
            reply = await acall(bus, MANAGER, "io.pmemd1.Manager", "SetConfig", "sb",
                                [config, True])
            results.append(reply.ok()[0])
    finally:
        stop.set()


def p99(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


IDLE = 3.0  # seconds of the same reads with no Apply: the baseline, measured in the same run


async def idle(stop: asyncio.Event) -> None:
    await asyncio.sleep(IDLE)
    stop.set()


def test_property_reads_during_slow_applies(bus: PrivateBus, slow_root: Path,
                                            reliability: Callable[[Figure], None]) -> None:
    with serving(bus, slow_root):
        async def run() -> tuple[list[float], list[float], list[str], list[str]]:
            clients = [await connect(bus.address) for _ in range(READERS + 1)]
            wrong: list[str] = []
            baseline: list[float] = []
            stop = asyncio.Event()
            await asyncio.gather(idle(stop),
                                 *(reader(c, stop, baseline, wrong) for c in clients[1:]))
            stop = asyncio.Event()
            times: list[float] = []
            results: list[str] = []
            await asyncio.gather(applier(clients[0], stop, results),
                                 *(reader(c, stop, times, wrong) for c in clients[1:]))
            for client in clients:
                client.disconnect()  # type: ignore[no-untyped-call]
            return baseline, times, wrong, results
        baseline, times, wrong, results = asyncio.run(run())
    assert results == ["reboot-required"] * APPLIES
    assert grubby_runs(slow_root) == APPLIES  # each Apply really waited on the tool
    assert all(o.endswith(" memmap=4G!12G") for o in entry_options(slow_root))  # FIRST last
    assert not wrong, wrong[:5]
    slowest, idle_p99 = p99(times), p99(baseline)
    print(f"\n{len(times)} property reads by {READERS} clients during {APPLIES} Applies "
          f"({DELAY:g} s grubby each): p50 {sorted(times)[len(times) // 2] * 1000:.1f} ms, "
          f"p99 {slowest * 1000:.1f} ms, max {max(times) * 1000:.1f} ms; with no Apply "
          f"(baseline, {len(baseline)} reads): p99 {idle_p99 * 1000:.1f} ms")
    assert slowest < SAFETY
    reliability(Figure("load", "property reads during slow Applies", len(times), "calls",
                       note=f"{READERS} clients, {APPLIES} Applies with a {DELAY:g} s "
                            f"bootloader tool; p99 {slowest * 1000:.1f} ms (with no "
                            f"Apply: {idle_p99 * 1000:.1f} ms)"))
