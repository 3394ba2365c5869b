"""The D-Bus service keeps pmemd-generator's cache (pmemd.fastpath.generator_cache)
current: SetConfig writes it for the new config before the daemon-reload that runs the
generator, Reload writes it for a config edited by hand."""

from __future__ import annotations

from pathlib import Path

from pmemd.fastpath.generator_cache import cache_is_current
from pmemd.machine.root import Machine
from tests.service.conftest import CONFIG, CONVERGED
from tests.service.harness import PrivateBus, Running, call

MANAGER = "/io/pmemd1"


def cached_config(root: Path) -> str:
    """The config bytes the cache is keyed on."""
    cache = Machine(root).generator_cache.read_text()
    line = next(line for line in cache.splitlines() if line.startswith("key head "))
    return bytes.fromhex(line.split(" ")[4]).decode()


def test_set_config_and_reload_write_the_generator_cache(bus: PrivateBus, service: Running,
                                                         root: Path) -> None:
    cache = Machine(root).generator_cache
    assert not cache.exists()
    reply = call(bus.address, MANAGER, "io.pmemd1.Manager", "SetConfig", "sb",
                 [CONVERGED, False])
    assert reply.ok() == ["converged"]
    assert cached_config(root) == CONVERGED and cache_is_current(str(root))
    (root / "etc/pmemd.yaml").write_text(CONFIG)  # edited by hand
    assert not cache_is_current(str(root))
    call(bus.address, MANAGER, "io.pmemd1.Manager", "Reload").ok()
    assert cached_config(root) == CONFIG and cache_is_current(str(root))


def test_a_refused_config_leaves_the_cache_alone(bus: PrivateBus, service: Running,
                                                 root: Path) -> None:
    call(bus.address, MANAGER, "io.pmemd1.Manager", "Reload").ok()
    before = Machine(root).generator_cache.read_bytes()
    reply = call(bus.address, MANAGER, "io.pmemd1.Manager", "SetConfig", "sb",
                 ["version: 2\n", False])
    assert reply.error == "io.pmemd1.Error.InvalidConfig"
    assert Machine(root).generator_cache.read_bytes() == before
