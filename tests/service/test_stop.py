"""``systemctl stop pmemd`` (SIGTERM) in the middle of an Apply: the service finishes the
change first — the caller gets its reply, the boot entries are the new ones, never half
written — and then exits 0; a call that arrives meanwhile is not taken on. The shipped
unit gives it the time: SIGTERM goes to the service only (KillMode=mixed), not to the
bootloader tool, and TimeoutStopSec bounds the wait."""

from __future__ import annotations

import asyncio
import configparser
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pmemd.service.server import DEFAULT_STOP_TIMEOUT
from tests.conftest import REPO
from tests.service.harness import TIMEOUT, PrivateBus, Running, acall, connect, start_service
from tests.service.slow import (
    entry_options,
    grubby_pids,
    set_delay,
    slow_grubby_machine,
    wait_for_grubby,
)

MANAGER = "/io/pmemd1"
DELAY = 2.0  # seconds grubby takes


@pytest.fixture
def slow_root(workdir: Path) -> Iterator[Path]:
    with slow_grubby_machine(workdir / "fedora", DELAY) as root:
        yield root


def test_sigterm_during_apply_finishes_it_then_exits_cleanly(bus: PrivateBus,
                                                              slow_root: Path) -> None:
    before = entry_options(slow_root)
    running: Running = start_service(bus, slow_root)

    async def run() -> tuple[list[object], str | None]:
        client = await connect(bus.address)
        apply = asyncio.ensure_future(acall(client, MANAGER, "io.pmemd1.Manager", "Apply",
                                            "b", [False]))
        await asyncio.get_running_loop().run_in_executor(None, wait_for_grubby, slow_root, 1)
        running.process.send_signal(signal.SIGTERM)  # as systemctl stop does (KillMode=mixed)
        reply = await asyncio.wait_for(apply, TIMEOUT)
        client.disconnect()  # type: ignore[no-untyped-call]
        return reply.ok(), reply.error

    body, _ = asyncio.run(run())
    running.process.wait(TIMEOUT)  # it exits by itself: one SIGTERM, as systemd sends
    status, err = running.stop()
    assert body[0] == "reboot-required", body
    after = entry_options(slow_root)
    assert after != before and all(o.endswith(" memmap=4G!12G") for o in after), after
    assert status == 0 and "Traceback" not in err, err
    assert "stopping: waiting for Apply" in err, err


def test_a_change_that_outlasts_the_stop_timeout_is_left_to_systemd(bus: PrivateBus,
                                                                    slow_root: Path) -> None:
    """The wait is bounded: past --stop-timeout the service says so and exits 1 at once
    (systemd's stop then ends the tool; pmemd's writes are crash-safe). grubby had not
    started its work, so the boot entries are the old ones."""
    set_delay(slow_root, 60)
    before = entry_options(slow_root)
    running = start_service(bus, slow_root, "--stop-timeout", "0.5")

    async def run() -> str | None:
        client = await connect(bus.address)
        apply = asyncio.ensure_future(acall(client, MANAGER, "io.pmemd1.Manager", "Apply",
                                            "b", [False]))
        await asyncio.get_running_loop().run_in_executor(None, wait_for_grubby, slow_root, 1)
        running.process.send_signal(signal.SIGTERM)
        reply = await asyncio.wait_for(apply, TIMEOUT)
        client.disconnect()  # type: ignore[no-untyped-call]
        return reply.error

    try:
        error = asyncio.run(run())
        status = running.process.wait(TIMEOUT)
    finally:  # the tool, in a process group of its own, outlives the service here
        os.killpg(grubby_pids(slow_root)[0], signal.SIGKILL)
    _, err = running.stop()
    assert error == "org.freedesktop.DBus.Error.NoReply"
    assert status == 1
    assert "stopping: Apply (requested by :1." in err
    assert "did not finish within 0.5s; exiting without it" in err and "Traceback" not in err
    assert entry_options(slow_root) == before


def test_the_unit_lets_the_change_finish_within_its_stop_timeout() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(REPO / "systemd/pmemd.service")
    service = unit["Service"]
    assert service["KillMode"] == "mixed"  # SIGTERM to the service, not to its tool
    stop = float(service["TimeoutStopSec"].removesuffix("s"))
    assert f"--stop-timeout={DEFAULT_STOP_TIMEOUT:g}" in service["ExecStart"] \
        or "--stop-timeout" not in service["ExecStart"]
    assert stop > DEFAULT_STOP_TIMEOUT  # the service gives up before systemd kills it
