"""Bus activation with the shipped activation file, idle exit, and nothing lost by it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import CONVERGED
from tests.service.harness import (
    BUS_NAME,
    TIMEOUT,
    PrivateBus,
    acall,
    await_owner,
    call,
    connect,
    serve_argv,
    wait_for_owner,
)

IDLE = 0.5  # seconds; short so the test sees the service leave


@pytest.fixture
def activating_bus(workdir: Path, root: Path) -> Iterator[PrivateBus]:
    # dbus-daemon starts what the shipped activation file says, with Exec= pointing here
    socket = f"unix:path={workdir / 'bus.socket'}"
    exec_argv = serve_argv(root, IDLE, "--bus-address", socket)
    started = PrivateBus(workdir, activation=exec_argv).start()
    assert started.socket == socket
    yield started
    started.stop()


def owner_pid(bus: PrivateBus) -> int:
    pid: int = call(bus.address, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                    "GetConnectionUnixProcessID", "s", [BUS_NAME],
                    destination="org.freedesktop.DBus").ok()[0]
    return pid


def wait_exit(pid: int) -> None:
    """Until process ``pid`` (not our child) is gone: its pidfd becomes readable."""
    async def run() -> None:
        fd = os.pidfd_open(pid)
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[None] = loop.create_future()
        loop.add_reader(fd, lambda: None if gone.done() else gone.set_result(None))
        try:
            await asyncio.wait_for(gone, TIMEOUT)
        finally:
            loop.remove_reader(fd)
            os.close(fd)
    asyncio.run(run())


def state(bus: PrivateBus) -> str:
    value: str = call(bus.address, "/io/pmemd1", "org.freedesktop.DBus.Properties", "Get",
                      "ss", ["io.pmemd1.Manager", "State"]).ok()[0].value
    return value


def test_a_call_starts_the_service_and_it_leaves_when_idle(activating_bus: PrivateBus) -> None:
    bus = activating_bus
    assert call(bus.address, "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner",
                "s", [BUS_NAME], destination="org.freedesktop.DBus").ok() == [False]
    assert state(bus) == "changes-pending"  # activated by this very call
    pid = owner_pid(bus)
    wait_for_owner(bus.address, owned=False)  # NameOwnerChanged: it gave the name up
    wait_exit(pid)
    log = bus.log.read_text()
    assert "Activating service name='io.pmemd1'" in log
    assert "pmemd.service.server: exiting" in log and "Traceback" not in log


def test_nothing_is_lost_across_an_idle_exit(activating_bus: PrivateBus, root: Path) -> None:
    bus = activating_bus
    reply = call(bus.address, "/io/pmemd1", "io.pmemd1.Manager", "SetConfig", "sb",
                 [CONVERGED, False])
    assert reply.ok() == ["converged"]
    first = owner_pid(bus)
    wait_for_owner(bus.address, owned=False)
    wait_exit(first)
    # a new instance, started by the next call, reads the same machine and config
    assert state(bus) == "converged"
    assert owner_pid(bus) != first
    assert (root / "etc/pmemd.yaml").read_text() == CONVERGED


def test_calls_keep_it_alive_and_each_is_answered(activating_bus: PrivateBus) -> None:
    """A client calling more often than the idle time keeps one instance; every call gets
    its answer, from whichever instance owns the name."""
    async def run() -> set[int]:
        client = await connect(activating_bus.address)
        pids = set()
        loop = asyncio.get_running_loop()
        end = loop.time() + 4 * IDLE
        while loop.time() < end:
            reply = await acall(client, "/io/pmemd1", "org.freedesktop.DBus.Properties",
                                "Get", "ss", ["io.pmemd1.Manager", "State"])
            assert reply.ok()[0].value == "changes-pending"
            owner = await acall(client, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                "GetConnectionUnixProcessID", "s", [BUS_NAME],
                                destination="org.freedesktop.DBus")
            pids.add(owner.ok()[0])
        client.disconnect()  # type: ignore[no-untyped-call]
        return pids
    assert len(asyncio.run(run())) == 1


def test_sigterm_releases_the_name_and_exits_cleanly(bus: PrivateBus, root: Path) -> None:
    from tests.service.harness import serving

    with serving(bus, root) as running:
        async def watch() -> None:
            client = await connect(bus.address)
            running.process.terminate()
            await await_owner(client, BUS_NAME, owned=False)
            client.disconnect()  # type: ignore[no-untyped-call]
        asyncio.run(watch())
        assert running.process.wait(timeout=TIMEOUT) == 0
