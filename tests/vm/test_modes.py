"""Namespace modes on a real system: one Debian 12 guest (4 GiB) with pmemd's .deb from this
checkout and four regions, one per mode (raw is the other modules' default):

* ``keep`` — fsdax, map: mem, ext4, on-boot: keep, 256 MiB at 1 GiB;
* ``fast`` — fsdax, map: dev, xfs, 512 MiB at 1.5 GiB (an info block and the page array on
  the namespace: the disk is 10 MiB smaller);
* ``dd`` — devdax, map: dev, align 2 MiB, 256 MiB at 2 GiB;
* ``ram`` — system-ram, map: dev, 512 MiB at 4 GiB.

Boot 1 installs the config and runs pmemd-reconcile (update-grub); boot 2 is the first with
the ``memmap=`` options: the pmemd-mode@ units rewrite the namespaces (a cold conversion),
make-filesystem and the mounts follow. Checked there: ``ndctl list`` shows each mode, both
filesystems are mounted with DAX, the devdax device maps 2 MiB (and refuses 4 KiB), MemTotal
grew by the system-ram region's whole memory blocks, O_DIRECT reads into a DAX mapping work.
Boot 3 is a warm reboot: the kernel finds the info blocks itself, set-mode changes nothing
but system-ram (which the kernel does not remember), and ``keep``'s file survived.

Three boots. Measured (2026-12-07, 2-core host, TCG): 459 s for the whole module with
another guest and the host test suite running beside it (boots 139 s, 164 s, 108 s); alone,
boots take about 50 s each (49.6 s and 52.3 s in the run before), about 4 minutes in all.
Each run's figures: ``tests/vm/artifacts/<test>/timings.json``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pmemd.core.events import MessageId
from tests.vm.conftest import Trip, guest_trip
from tests.vm.e2e import Journey
from tests.vm.image import Image

pytestmark = pytest.mark.vm

MiB = 1 << 20
BOOTS = 3
TOTAL_TIMEOUT = 1500.0
CONFIG = """\
version: 1
boot:
  reboot: never
  trial: never
regions:
  - name: keep
    size: 256M
    offset: 1G
    mode: fsdax
    filesystem: {type: ext4, mountpoint: /keep, on-boot: keep}
  - name: fast
    size: 512M
    offset: 1536M
    mode: fsdax
    map: dev
    filesystem: {type: xfs, mountpoint: /fast}
  - name: dd
    size: 256M
    offset: 2G
    mode: devdax
    map: dev
    align: 2M
  - name: ram
    size: 512M
    offset: 4G
    mode: system-ram
    map: dev
"""
STARTS = {"keep": 0x40000000, "fast": 0x60000000, "dd": 0x80000000, "ram": 0x100000000}

# Run in the guest: JSON about the namespaces, mounts, memory, the dax device and O_DIRECT.
PROBE = r'''
import json, mmap, os, subprocess, sys

def run(*argv):
    done = subprocess.run(argv, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else f"rc={done.returncode} {done.stderr}"

def ndctl():
    text = run("ndctl", "list", "-N", "-v")
    data = json.loads(text) if text.startswith(("[", "{")) else []
    return data if isinstance(data, list) else [data]

def odirect(directory):
    """O_DIRECT read from a file on the root disk into a MAP_SHARED mapping of a DAX file."""
    size = 2 << 20
    src = "/root/odirect-src"
    with open(src, "wb") as f:
        f.write(bytes(range(256)) * (size // 256))
    os.sync()
    fd = os.open(os.path.join(directory, "odirect-dst"), os.O_RDWR | os.O_CREAT)
    os.ftruncate(fd, size)
    m = mmap.mmap(fd, size, mmap.MAP_SHARED)
    s = os.open(src, os.O_RDONLY | os.O_DIRECT)
    try:
        n = os.preadv(s, [m], 0)
        return "ok" if n == size and m[:256] == bytes(range(256)) else f"short/mismatch {n}"
    except OSError as err:
        return f"error {err.errno} {err.strerror}"

def devdax(path):
    out = {}
    fd = os.open(path, os.O_RDWR)
    for size in (4096, 2 << 20):
        try:
            m = mmap.mmap(fd, size, mmap.MAP_SHARED)
            m[:6] = b"pmemd!"
            out[str(size)] = m[:6].decode()
            m.close()
        except OSError as err:
            out[str(size)] = f"error {err.errno}"
    return out

meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo"))
mounts = [line.split() for line in open("/proc/self/mountinfo")]
doc = {
    "ndctl": ndctl(),
    "daxctl": json.loads(run("daxctl", "list") or "[]"),
    "memtotal_kib": int(meminfo["MemTotal"].split()[0]),
    "block_size": int(open("/sys/devices/system/memory/block_size_bytes").read(), 16),
    "mounts": {m[4]: {"source": m[m.index("-") + 2], "fstype": m[m.index("-") + 1],
                      "options": m[5].split(",") + m[m.index("-") + 3].split(",")}
               for m in mounts},
    "links": {d: sorted(os.listdir(d)) if os.path.isdir(d) else []
              for d in ("/dev/disk/by-pmem-address", "/dev/dax/by-pmem-address")},
    "failed": run("systemctl", "--failed", "--plain", "--no-legend").split("\n"),
}
if "odirect" in sys.argv:
    doc["odirect"] = {d: odirect(d) for d in ("/keep", "/fast") if os.path.ismount(d)}
link = "/dev/dax/by-pmem-address/0x80000000"
if os.path.exists(link):
    doc["devdax"] = devdax(link)
print(json.dumps(doc))
'''


@pytest.fixture(scope="module")
def trip(vm_image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trip]:
    del vm_image
    yield from guest_trip(tmp_path_factory, "modes-guest", max_boots=BOOTS,
                          timeout=TOTAL_TIMEOUT, memory="4G")


def probe(journey: Journey, name: str, *extra: str) -> dict[str, Any]:
    path = journey.guest.put("probe.py", PROBE)
    step = journey.check("systemctl is-system-running --wait || true\n"
                         f"python3 {path} {' '.join(extra)}\n", name)
    document: dict[str, Any] = json.loads(step.stdout.splitlines()[-1])
    return document


def namespaces(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """ndctl's namespaces by the region they belong to (their start address)."""
    by_dev = {ns["dev"]: ns for ns in doc["ndctl"]}
    return {name: by_dev[f"namespace{index}.0"] for index, name in
            enumerate(sorted(STARTS, key=STARTS.__getitem__))}


def assert_modes(doc: dict[str, Any]) -> None:
    ns = namespaces(doc)
    assert (ns["keep"]["mode"], ns["keep"]["map"], ns["keep"]["size"]) == \
        ("fsdax", "mem", 256 * MiB), ns["keep"]
    assert (ns["fast"]["mode"], ns["fast"]["map"]) == ("fsdax", "dev"), ns["fast"]
    assert ns["fast"]["size"] < 512 * MiB and "uuid" in ns["fast"], ns["fast"]
    assert (ns["dd"]["mode"], ns["dd"]["map"], ns["dd"]["align"]) == \
        ("devdax", "dev", 2 * MiB), ns["dd"]
    assert ns["ram"]["mode"] == "devdax", ns["ram"]
    ram = [d for d in doc["daxctl"] if d["mode"] == "system-ram"]
    assert len(ram) == 1 and ram[0]["online_memblocks"] == ram[0]["total_memblocks"] > 0, \
        doc["daxctl"]
    for mountpoint, fstype in (("/keep", "ext4"), ("/fast", "xfs")):
        mount = doc["mounts"].get(mountpoint)
        assert mount is not None and mount["fstype"] == fstype, doc["mounts"]
        assert "dax=always" in mount["options"], mount
    assert doc["links"]["/dev/disk/by-pmem-address"] == ["0x40000000", "0x60000000"], \
        doc["links"]
    # the system-ram region's dax device keeps its node (and link) after daxctl handed its
    # memory to the kernel
    assert doc["links"]["/dev/dax/by-pmem-address"] == ["0x100000000", "0x80000000"], \
        doc["links"]
    assert doc["devdax"] == {"4096": "error 22", str(2 * MiB): "pmemd!"}, doc["devdax"]
    assert [line for line in doc["failed"] if line and "ndctl-monitor" not in line] == [], \
        doc["failed"]


def mode_events(journey: Journey, name: str) -> list[tuple[str, str]]:
    step = journey.check(f"journalctl -b --no-pager -o json "
                         f"MESSAGE_ID={MessageId.NAMESPACE_CONFIGURED.value}\n", name)
    events = [json.loads(line) for line in step.stdout.splitlines() if line.strip()]
    return sorted((e["PMEMD_REGION"], e["PMEMD_MODE"]) for e in events)


def test_each_mode_after_a_cold_conversion_and_a_warm_reboot(
        trip: Trip, vm_timing: Callable[[str, float], None]) -> None:
    journey, guest = trip.journey, trip.journey.guest
    started = time.monotonic()
    vm_timing(".deb build + image with it installed", trip.prepared)
    first = journey.first_boot()
    vm_timing("boot 1 to multi-user", first.seconds)
    before = probe(journey, "probe-before")
    journey.install_config(CONFIG)
    reconciled = journey.reconcile_unit("reconcile")
    assert reconciled["result"] == "success", reconciled

    # Boot 2: the first with the options; a cold conversion of every namespace.
    second = guest.reboot(name="reboot-1")
    vm_timing("boot 2 (conversions) to multi-user", second.seconds)
    cold = probe(journey, "probe-cold", "odirect")
    assert_modes(cold)
    assert mode_events(journey, "events-cold") == [
        ("dd", "devdax"), ("fast", "fsdax"), ("ram", "system-ram")]
    # MemTotal: the four regions left RAM, the system-ram one's whole blocks came back.
    ram = next(d for d in cold["daxctl"] if d["mode"] == "system-ram")
    added = ram["online_memblocks"] * cold["block_size"]
    assert added == 3 * 128 * MiB, ram  # 512 MiB less the info block's block
    expected = before["memtotal_kib"] * 1024 - (256 + 512 + 256 + 512) * MiB + added
    assert abs(cold["memtotal_kib"] * 1024 - expected) < 48 * MiB, (before["memtotal_kib"],
                                                                    cold["memtotal_kib"])
    # O_DIRECT into a DAX mapping: fsdax map=mem works (and so does map=dev; raw mode was
    # measured the same, vm-facts.md).
    assert cold["odirect"] == {"/keep": "ok", "/fast": "ok"}, cold["odirect"]
    token = secrets.token_hex(8)
    journey.check(f"echo {token} > /keep/token\nsync\n", "write-token")

    # Boot 3: warm; the info blocks are found by the kernel, system-ram is redone.
    third = guest.reboot(name="reboot-2")
    vm_timing("boot 3 (warm) to multi-user", third.seconds)
    warm = probe(journey, "probe-warm")
    assert_modes(warm)
    assert mode_events(journey, "events-warm") == [("ram", "system-ram")]
    assert journey.check("cat /keep/token\n", "read-token").stdout.strip() == token
    said = journey.check("journalctl -b --no-pager -o cat -u 'pmemd-mode@*'\n",
                         "mode-units").stdout
    assert re.search(r"region fast: namespace\d\.0 in fsdax mode map=dev .* nothing to do",
                     said), said
    assert guest.boots == BOOTS
    vm_timing("modes module in total", time.monotonic() - started)
