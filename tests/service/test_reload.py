"""``Reload`` makes root write the generator's cache: it is a change, so polkit decides
(``io.pmemd1.manage``, as for SetConfig and Apply; without polkit only root), and however
often it is called, reloads are coalesced — the calls that arrive while one runs share the
next, and they start at most once a second."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.harness import (
    TIMEOUT,
    PrivateBus,
    Running,
    acall,
    connect,
    serving,
    start_polkitd,
)
from tests.service.slow import Feeder, slow_file
from tests.service.test_access import ACCESS_DENIED, MANAGER, RULES, client
from tests.service.test_responsive import PMEM0

CACHE = "var/lib/pmemd/generator-cache"


@pytest.fixture
def polkit_bus(workdir: Path) -> Iterator[PrivateBus]:
    started = PrivateBus(workdir, polkit=True).start()
    yield started
    started.stop()


def test_nobody_may_not_reload_without_polkit(bus: PrivateBus, service: Running,
                                              root: Path) -> None:
    reply = client(bus, MANAGER, "io.pmemd1.Manager", "Reload")
    assert reply.error == ACCESS_DENIED, reply
    assert reply.text.endswith("polkit is not running on the system bus, so only root may "
                               "do this")
    assert not (root / CACHE).exists()
    # root may
    assert client(bus, MANAGER, "io.pmemd1.Manager", "Reload", nobody=False).ok() == []
    assert (root / CACHE).exists()


def test_polkit_decides_who_may_reload(polkit_bus: PrivateBus, workdir: Path,
                                       root: Path) -> None:
    polkitd = start_polkitd(polkit_bus, workdir)  # the shipped defaults: auth_admin
    try:
        with serving(polkit_bus, root):
            reply = client(polkit_bus, MANAGER, "io.pmemd1.Manager", "Reload")
            assert reply.error == ACCESS_DENIED, reply
            assert "authentication is required (io.pmemd1.manage)" in reply.text
            assert not (root / CACHE).exists()
    finally:
        polkitd.stop()
    ruled = workdir / "ruled"
    ruled.mkdir()
    polkitd = start_polkitd(polkit_bus, ruled, RULES)  # nobody may manage
    try:
        with serving(polkit_bus, root):
            assert client(polkit_bus, MANAGER, "io.pmemd1.Manager", "Reload").ok() == []
            assert (root / CACHE).exists()
    finally:
        polkitd.stop()


def test_a_flood_of_reloads_is_coalesced(bus: PrivateBus, root: Path) -> None:
    """Sixty Reloads from three clients at once, while each reading of the machine waits
    on a slow sysfs file: every call is answered, and the machine was read at most twice
    (the first reload, and one for all that arrived while it ran) — not sixty times."""
    with serving(bus, root) as running:
        async def run() -> None:
            clients = [await connect(bus.address) for _ in range(3)]
            with slow_file(root / PMEM0 / "size") as slow, Feeder(slow):
                replies = await asyncio.wait_for(asyncio.gather(*(
                    acall(clients[i % 3], MANAGER, "io.pmemd1.Manager", "Reload")
                    for i in range(60))), TIMEOUT)
            assert all(r.ok() == [] for r in replies)
            assert 1 <= slow.readers <= 2, slow.readers
            for one in clients:
                one.disconnect()  # type: ignore[no-untyped-call]
        asyncio.run(run())
    assert (root / CACHE).exists()
    assert running.stderr.count("reloaded: read the machine again") <= 2, running.stderr
