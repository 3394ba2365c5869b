"""The service reads the machine off its event loop: while a reading waits on a slow file
(a FIFO standing in for a slow sysfs or /boot), other clients' property reads are answered
from the last reading; a reading that fails with an OSError (sysfs refusing the sandboxed
service) is a typed state — State degraded, ReadError naming the file — not a traceback in
the bus library; and a flood of calls while a reading runs costs one more reading, not one
per call."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

from dbus_next.aio.message_bus import MessageBus

from tests.service.conftest import CONFIG, CONVERGED
from tests.service.harness import (
    BUS_NAME,
    TIMEOUT,
    PrivateBus,
    Reply,
    Running,
    acall,
    connect,
    serving,
)
from tests.service.slow import slow_file

MANAGER = "/io/pmemd1"
PROPS = "org.freedesktop.DBus.Properties"
PMEM0 = "sys/devices/platform/e820_pmem/ndbus0/region0/namespace0.0/block/pmem0"
# Only a bound for a service that does not answer at all: the slow read lasts until the
# test feeds it, so every answer counted below came while it was still waiting.
ANSWER_BOUND = 10.0
# The service as the shipped unit runs it: root, but without CAP_DAC_OVERRIDE and
# CAP_DAC_READ_SEARCH (CapabilityBoundingSet=CAP_SYS_ADMIN), so a mode 000 directory in
# sysfs is an EACCES for it.
AS_THE_UNIT = ("setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all")


async def get_state(bus: MessageBus) -> Reply:
    return await asyncio.wait_for(
        acall(bus, MANAGER, PROPS, "Get", "ss", ["io.pmemd1.Manager", "State"]), ANSWER_BOUND)


def touch(path: Path) -> None:
    """A new mtime: the service's next call sees that the file changed and reads again."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_property_reads_are_answered_while_a_reading_waits_on_a_slow_file(
        bus: PrivateBus, service: Running, root: Path) -> None:
    async def run() -> None:
        caller, other = await connect(bus.address), await connect(bus.address)
        loop = asyncio.get_running_loop()
        with slow_file(root / PMEM0 / "size") as slow:
            touch(root / "etc/pmemd.yaml")
            plan = asyncio.ensure_future(acall(caller, MANAGER, "io.pmemd1.Manager", "GetPlan"))
            await loop.run_in_executor(None, slow.wait_reader)  # the service reads it now
            answers = [(await get_state(other)).ok()[0].value for _ in range(20)]
            busctl = await asyncio.create_subprocess_exec(
                "busctl", "--system", "get-property", BUS_NAME, MANAGER, "io.pmemd1.Manager",
                "RebootRequired", env=bus.env, stdout=subprocess.PIPE)
            out, _ = await asyncio.wait_for(busctl.communicate(), ANSWER_BOUND)
            assert slow.writer is not None  # still not fed: all of it came while it waited
            assert answers == ["changes-pending"] * 20
            assert out == b"b true\n"
            slow.feed()
            reply = await asyncio.wait_for(plan, TIMEOUT)
        assert json.loads(reply.ok()[0])["state"] == "changes-pending"
        for client in (caller, other):
            client.disconnect()  # type: ignore[no-untyped-call]
    asyncio.run(run())


def test_calls_during_a_reading_cost_one_more_reading_not_one_each(
        bus: PrivateBus, service: Running, root: Path) -> None:
    """Forty calls arrive while a reading waits (the config changed meanwhile): once it is
    fed, one more reading follows — the FIFO is opened once more, and every call is
    answered from it."""
    async def run() -> None:
        clients = [await connect(bus.address) for _ in range(4)]
        loop = asyncio.get_running_loop()
        with slow_file(root / PMEM0 / "size") as slow:
            touch(root / "etc/pmemd.yaml")
            first = asyncio.ensure_future(acall(clients[0], MANAGER, "io.pmemd1.Manager",
                                                "ListRegions"))
            await loop.run_in_executor(None, slow.wait_reader)
            touch(root / "etc/pmemd.yaml")  # changed again while it is being read
            calls = [asyncio.ensure_future(acall(clients[i % 4], MANAGER, "io.pmemd1.Manager",
                                                 "ListRegions")) for i in range(40)]
            slow.feed()
            await loop.run_in_executor(None, slow.wait_reader)  # the one follow-up reading
            slow.feed()
            replies = await asyncio.wait_for(asyncio.gather(first, *calls), TIMEOUT)
            assert slow.readers == 2
        assert all(len(r.ok()[0]) == 2 for r in replies)
        for client in clients:
            client.disconnect()  # type: ignore[no-untyped-call]
    asyncio.run(run())


def test_a_reading_that_fails_with_an_oserror_is_a_degraded_state(
        bus: PrivateBus, root: Path) -> None:
    block = root / "sys/block"
    with serving(bus, root, prefix=AS_THE_UNIT) as running:
        async def run() -> None:
            client = await connect(bus.address)
            block.chmod(0)
            try:
                touch(root / "etc/pmemd.yaml")
                plan = await acall(client, MANAGER, "io.pmemd1.Manager", "GetPlan")
                assert plan.error == "io.pmemd1.Error.Machine", plan
                assert f"{block}: Permission denied" in plan.text
                props = (await acall(client, MANAGER, PROPS, "GetAll", "s",
                                     ["io.pmemd1.Manager"])).ok()[0]
                assert props["State"].value == "degraded"
                assert props["ReadError"].value == plan.text
                candidate = await acall(client, MANAGER, "io.pmemd1.Manager", "PlanConfig",
                                        "s", [CONVERGED])
                assert (candidate.error, candidate.text) == (plan.error, plan.text)
            finally:
                block.chmod(0o755)
            touch(root / "etc/pmemd.yaml")
            plan = await acall(client, MANAGER, "io.pmemd1.Manager", "GetPlan")
            assert json.loads(plan.ok()[0])["state"] == "changes-pending"
            assert (await get_state(client)).ok()[0].value == "changes-pending"
            client.disconnect()  # type: ignore[no-untyped-call]
        asyncio.run(run())
    assert running.stderr.count("Permission denied") == 1, running.stderr  # logged once


def test_a_property_read_after_an_edit_sees_the_edit(
        bus: PrivateBus, service: Running, root: Path) -> None:
    """An admin edits /etc/pmemd.yaml and reads a property at once (``busctl
    get-property``, pmemctl): the answer reflects the edit — the read waits for the reading
    its own call starts (no reading or change was under way), rather than answering from
    the reading before the edit."""
    config = root / "etc/pmemd.yaml"

    async def run() -> list[str]:
        client = await connect(bus.address)
        seen = []
        for text in (CONVERGED, CONFIG, CONVERGED):  # CONFIG: a region not booted yet
            config.write_text(text)
            reply = await acall(client, MANAGER, PROPS, "GetAll", "s", ["io.pmemd1.Manager"])
            seen.append(reply.ok()[0]["State"].value)
            seen.append((await get_state(client)).ok()[0].value)
        client.disconnect()  # type: ignore[no-untyped-call]
        return seen
    assert asyncio.run(run()) == ["converged"] * 2 + ["changes-pending"] * 2 + ["converged"] * 2
