"""50 clients, each on its own connection, calling for 10 seconds: every call answered
correctly, none failing, and the service's memory (RSS) not growing with the calls."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dbus_next.aio.message_bus import MessageBus

from tests.service.harness import PrivateBus, Running, acall, connect, rss_kib

CLIENTS = 50
SECONDS = 10.0
WARM_UP = 2.0
# The service's RSS may move by allocator noise; a leak of even 100 bytes per call would
# add megabytes over the tens of thousands of calls made here.
MAX_GROWTH_KIB = 2048

MANAGER = "/io/pmemd1"
DATA = "/io/pmemd1/region/data"
PROPS = "org.freedesktop.DBus.Properties"
VALID = "version: 1\nregions:\n  - name: data\n    size: 512M\n    offset: 1G\n"
INVALID = "version: 1\nregions:\n  - name: data\n    size: 3X\n"


@dataclass
class Tally:
    calls: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)


async def one_call(bus: MessageBus, kind: str) -> str | None:
    """Make one call of ``kind``; ``None`` when the answer is right, else what was wrong."""
    if kind == "property":
        reply = await acall(bus, MANAGER, PROPS, "Get", "ss", ["io.pmemd1.Manager", "State"])
        return None if reply.body and reply.body[0].value == "changes-pending" else str(reply)
    if kind == "all":
        reply = await acall(bus, DATA, PROPS, "GetAll", "s", ["io.pmemd1.Region"])
        return None if reply.body and reply.body[0]["Device"].value == "/dev/pmem0" \
            else str(reply)
    if kind == "plan":
        reply = await acall(bus, MANAGER, "io.pmemd1.Manager", "GetPlan")
        return None if reply.body and json.loads(reply.body[0])["state"] == "changes-pending" \
            else str(reply)
    if kind == "regions":
        reply = await acall(bus, MANAGER, "io.pmemd1.Manager", "ListRegions")
        return None if reply.body and len(reply.body[0]) == 2 else str(reply)
    if kind == "validate":
        reply = await acall(bus, MANAGER, "io.pmemd1.Manager", "Validate", "s", [VALID])
        return None if reply.error is None else str(reply)
    reply = await acall(bus, MANAGER, "io.pmemd1.Manager", "Validate", "s", [INVALID])
    return None if reply.error == "io.pmemd1.Error.InvalidConfig" else str(reply)


KINDS = ("property", "all", "plan", "regions", "validate", "invalid")


async def client(address: str, until: float, tally: Tally, seed: int) -> None:
    bus = await connect(address)
    chooser = random.Random(seed)
    loop = asyncio.get_running_loop()
    try:
        while loop.time() < until:
            kind = chooser.choice(KINDS)
            problem = await one_call(bus, kind)
            tally.calls[kind] += 1
            if problem is not None:
                tally.wrong.append(f"{kind}: {problem}")
    finally:
        bus.disconnect()  # type: ignore[no-untyped-call]


async def load(address: str, seconds: float, clients: int) -> Tally:
    tally = Tally()
    until = asyncio.get_running_loop().time() + seconds
    await asyncio.gather(*(client(address, until, tally, seed) for seed in range(clients)))
    return tally


def test_fifty_clients_for_ten_seconds(bus: PrivateBus, service: Running,
                                       record_property: Any) -> None:
    pid = service.process.pid
    warm = asyncio.run(load(bus.address, WARM_UP, CLIENTS))
    assert not warm.wrong, warm.wrong[:5]
    before = rss_kib(pid)
    tally = asyncio.run(load(bus.address, SECONDS, CLIENTS))
    after = rss_kib(pid)
    total = sum(tally.calls.values())
    record_property("calls", total)
    record_property("rss_kib", f"{before} -> {after}")
    print(f"\n{CLIENTS} clients, {SECONDS:g}s: {total} calls ({dict(tally.calls)}), "
          f"service RSS {before} KiB -> {after} KiB")
    assert not tally.wrong, tally.wrong[:5]
    assert set(tally.calls) == set(KINDS)
    assert after - before <= MAX_GROWTH_KIB, (before, after, total)
    assert service.process.poll() is None  # still serving
