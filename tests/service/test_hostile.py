"""Hostile input over D-Bus: SetConfig, Validate and PlanConfig with documents near the
bus's 32 MiB limit and beyond it, deeply nested, alias bombs, 10,000 regions, one line of
8,000 problems; every method with arguments of every type and at their limits, on objects
that exist and that do not. Each call gets a typed answer (a result, io.pmemd1.Error.* or the
bus's own org.freedesktop.DBus.Error.*) within a stated bound, nothing is written, and
the service stays up and answers the next property read."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbus_next.aio.message_bus import MessageBus

from tests.conftest import REPO
from tests.reliability import Figure
from tests.service.harness import PrivateBus, Reply, Running, acall, connect

MANAGER = "/io/pmemd1"
DATA = "/io/pmemd1/region/data"
NOWHERE = "/io/pmemd1/region/nowhere"
PROPS = "org.freedesktop.DBus.Properties"
BOUND = 30.0  # seconds: every call is answered within this
MEMORY_BOUND_KIB = 2 << 20  # the service's peak resident memory stays below 2 GiB
BUS_LIMIT = 32 << 20  # dbus-daemon's max_message_size on the system bus


def documents() -> dict[str, str]:
    bomb = ["version: 1", "a: &a [x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefghij":
        previous = chr(ord(level) - 1)
        bomb.append(f"{level}: &{level} [{', '.join([f'*{previous}'] * 9)}]")
    many = "".join(f"  - name: r{i}\n    size: 128M\n    offset: {4 + i * 0.125:g}G\n"
                   for i in range(10_000))
    return {
        "empty": "",
        "30 MiB": "version: 1\nregions: []\n# " + "x" * (30 << 20) + "\n",
        "deeply nested": "version: 1\nregions: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "nested mappings": "version: 1\nregions:\n" + "".join(
            " " * i + f"k{i}:\n" for i in range(1000)),
        "alias bomb": "\n".join(bomb) + "\nregions: *j\n",
        "10,000 regions": f"version: 1\nregions:\n{many}",
        "8,000 problems on a line": "version: 1\nregions: [" + ",".join(["x"] * 8000) + "]\n",
        "control characters": "version: 1\nregions:\n  - name: \x1b[31mred\x07\n",
        "not text": "\udcff\udcfe" * 10,
    }


@dataclass(frozen=True)
class Call:
    label: str
    path: str
    interface: str
    member: str
    signature: str
    body: list[Any]


def calls() -> list[Call]:
    found = []
    for name, text in documents().items():
        if "\udcff" in text:  # not UTF-8: D-Bus strings cannot carry it; the client refuses
            continue
        for member in ("Validate", "PlanConfig"):
            found.append(Call(f"{member} {name}", MANAGER, "io.pmemd1.Manager", member, "s",
                              [text]))
        for apply in (False, True):
            found.append(Call(f"SetConfig {name} apply={apply}", MANAGER,
                              "io.pmemd1.Manager", "SetConfig", "sb", [text, apply]))
    limits: list[tuple[str, list[Any]]] = [
        ("", []), ("s", [""]), ("s", ["x" * 65536]), ("b", [True]), ("b", [False]),
        ("i", [-(1 << 31)]), ("t", [(1 << 64) - 1]), ("d", [float("nan")]),
        ("as", [["a"] * 1000]), ("a{sv}", [{}]), ("sb", ["", True]), ("ss", ["a", "b"]),
        ("o", ["/"]), ("g", ["a{sv}"]), ("y", [255]), ("(sb)", [["x", True]]),
    ]
    methods = [(MANAGER, "io.pmemd1.Manager", m) for m in
               ("Reload", "Validate", "GetPlan", "PlanConfig", "GetMemoryMap", "ListRegions",
                "SetConfig", "Apply", "NoSuchMethod")]
    methods += [(path, "io.pmemd1.Region", m) for path in (DATA, NOWHERE)
                for m in ("Mount", "Unmount", "Format")]
    methods += [(MANAGER, "io.pmemd1.NoSuchInterface", "Reload")]
    for path, interface, member in methods:
        for signature, body in limits:
            if path == DATA and (member, signature) in (("Mount", ""), ("Unmount", ""),
                                                        ("Format", "b")):
                continue  # real work on a real region: tested in test_operations
            found.append(Call(f"{member}({signature})", path, interface, member, signature,
                              body))
    for interface, name in (("io.pmemd1.Manager", "State"), ("io.pmemd1.Manager", "Nope"),
                            ("io.pmemd1.Nope", "State"), ("", "State")):
        found.append(Call(f"Get {interface}.{name}", MANAGER, PROPS, "Get", "ss",
                          [interface, name]))
    found.append(Call("Set State", MANAGER, PROPS, "Set", "ssv",
                      ["io.pmemd1.Manager", "State", _variant("s", "converged")]))
    found.append(Call("GetAll of nothing", NOWHERE, PROPS, "GetAll", "s", [""]))
    return found


def _variant(signature: str, value: object) -> Any:
    from dbus_next.signature import Variant

    return Variant(signature, value)


def typed(reply: Reply) -> bool:
    """A result, or an error with a name the API or the bus defines."""
    return reply.error is None or reply.error.startswith(
        ("io.pmemd1.Error.", "org.freedesktop.DBus.Error."))


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for {pid}")


def files(root: Path) -> dict[str, bytes]:
    """What pmemd could write: the config, its state, the boot files."""
    return {str(p.relative_to(root)): p.read_bytes()
            for top in ("etc", "var", "boot") for p in sorted((root / top).rglob("*"))
            if p.is_file()}


OVERSIZED = f"""
import asyncio, sys
from tests.service.harness import acall, connect

async def run() -> None:
    bus = await connect(sys.argv[1])
    await acall(bus, "{MANAGER}", "io.pmemd1.Manager", "Validate", "s", ["#" * {BUS_LIMIT + 1}])

try:
    asyncio.run(run())
except (ConnectionError, EOFError):
    sys.exit(3)
"""


def oversized_call(address: str) -> None:
    """A Validate larger than the bus carries, from a process of its own: dropped by the
    bus (its connection reset)."""
    done = subprocess.run([sys.executable, "-c", OVERSIZED, address], cwd=REPO,
                          capture_output=True, text=True, timeout=BOUND, check=False)
    assert done.returncode == 3, done.stderr


async def one(bus: MessageBus, call: Call) -> tuple[Reply, float]:
    start = time.monotonic()
    reply = await asyncio.wait_for(acall(bus, call.path, call.interface, call.member,
                                         call.signature, call.body), BOUND)
    return reply, time.monotonic() - start


def test_hostile_calls_get_typed_answers_and_change_nothing(
        bus: PrivateBus, service: Running, root: Path,
        reliability: Callable[[Figure], None]) -> None:
    before = files(root)
    # Reload is allowed to root and writes the generator's cache: not a hostile call here
    # (test_reload.py has it, with nobody).
    tried = [call for call in calls() if call.label != "Reload()"]
    pid = service.process.pid

    async def run() -> tuple[list[str], float]:
        client = await connect(bus.address)
        wrong, slowest = [], 0.0
        for call in tried:
            reply, seconds = await one(client, call)
            slowest = max(slowest, seconds)
            if not typed(reply) or (call.interface.startswith("io.pmemd1.")
                                    and call.member in ("SetConfig", "Format", "Mount")
                                    and reply.error is None):
                wrong.append(f"{call.label}: {reply.error}: {reply.text[:200]}")
            state = await one(client, Call("", MANAGER, PROPS, "Get", "ss",
                                           ["io.pmemd1.Manager", "State"]))
            assert state[0].ok()[0].value == "changes-pending", (call.label, state)
        # Past the bus's limit the bus drops the sender; the service never sees it.
        await asyncio.get_running_loop().run_in_executor(None, oversized_call, bus.address)
        state = await one(client, Call("", MANAGER, PROPS, "Get", "ss",
                                       ["io.pmemd1.Manager", "State"]))
        assert state[0].ok()[0].value == "changes-pending"
        client.disconnect()  # type: ignore[no-untyped-call]
        return wrong, slowest

    wrong, slowest = asyncio.run(run())
    assert not wrong, "\n".join(wrong)
    assert service.process.poll() is None
    assert files(root) == before
    peak = peak_rss_kib(pid)
    assert peak < MEMORY_BOUND_KIB, peak
    reliability(Figure("hostile input", "D-Bus calls: huge, nested, alias-bomb and "
                       "10,000-region documents; every method with every argument type",
                       len(tried) + 1, "calls",
                       note=f"typed answers only, nothing written, slowest {slowest:.1f} s, "
                            f"service peak RSS {peak // 1024} MiB"))
