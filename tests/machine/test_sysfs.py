"""pmem devices matched to regions by physical address, on sysfs trees modelled on real
boots (examples/machines), and the plan's view of them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pmemd.core.config import parse_config
from pmemd.core.devices import (
    DeviceFacts,
    DeviceState,
    NdRegion,
    identify,
    match_region,
    unmatched_devices,
)
from pmemd.core.model import Region
from pmemd.core.ranges import MemRange
from pmemd.core.units import link_name
from pmemd.machine.facts import read_device_facts
from pmemd.machine.root import PMEM_LINK_DIR, Machine
from pmemd.machine.sysfs import read_devices
from tests.conftest import EXAMPLES, MACHINES, run_pmemd

GiB = 1 << 30
MiB = 1 << 20
EXAMPLE_CONFIG = str(EXAMPLES / "pmemd.yaml")
DATA = MemRange.sized(12 * GiB, 4 * GiB)
CACHE = MemRange.sized(10 * GiB, 2 * GiB)


def machine(name: str) -> Machine:
    return Machine(MACHINES / name)


def copy_machine(name: str, tmp_path: Path) -> Machine:
    """A private copy of an example machine (sysfs links are relative, so they still
    resolve inside the copy)."""
    target = tmp_path / name
    shutil.copytree(MACHINES / name, target, symlinks=True)
    return Machine(target)


@pytest.mark.parametrize(("tree", "by_address"), [
    ("qemu-2g-pmem", {1 * GiB: "pmem0"}),
    ("server-16g-memmap", {12 * GiB: "pmem0"}),
    ("server-16g-2pmem", {10 * GiB: "pmem0", 12 * GiB: "pmem1"}),
    ("server-16g-2pmem-reordered", {10 * GiB: "pmem1", 12 * GiB: "pmem0"}),
    ("qemu-2g-memmap-captured", {1 * GiB: "pmem0", 0x60000000: "pmem1"}),  # a real boot
])
def test_devices_are_known_by_their_namespace_address(tree: str, by_address: dict[int, str]
                                                      ) -> None:
    facts = read_devices(machine(tree))
    assert facts.bus and facts.addresses_readable
    assert {d.range.start: d.name for d in facts.devices if d.range} == by_address
    for device in facts.devices:
        assert device.dax is True and device.mode == "memory"
        assert device.range is not None and device.size == device.range.size


def test_reordered_probe_does_not_move_a_region_to_another_device() -> None:
    for tree, data, cache in (("server-16g-2pmem", "pmem1", "pmem0"),
                              ("server-16g-2pmem-reordered", "pmem0", "pmem1")):
        facts = read_device_facts(machine(tree))
        found = {}
        for rng in (DATA, CACHE):
            device = identify(rng, facts, argument="", on_cmdline=True)[2]
            assert device is not None
            found[rng] = device
        assert found[DATA].name == data and found[CACHE].name == cache
        assert found[DATA].namespace == "namespace1.0"  # the 12G region is region1 either way


def test_a_tree_without_pmem_has_no_bus_and_no_devices() -> None:
    assert read_devices(machine("server-16g")) == DeviceFacts(bus=False, links=PMEM_LINK_DIR)


def test_the_stable_name_is_the_resource_file_as_the_kernel_prints_it() -> None:
    """udev's SYMLINK+= uses $attr{device/resource} verbatim; units use link_name()."""
    root = MACHINES / "server-16g-2pmem"
    for block in sorted((root / "sys" / "block").iterdir()):
        resource = (block / "device" / "resource").read_text().strip()
        link = link_name(PMEM_LINK_DIR, int(resource, 16))
        assert link == f"/dev/disk/by-pmem-address/{resource}"


# --- reasons for a missing device ---------------------------------------------------------

REGION = Region("data", 4 * GiB, 12 * GiB)


def _state(facts: DeviceFacts, rng: MemRange = DATA, on_cmdline: bool = True,
           persistent: tuple[MemRange, ...] | None = None) -> tuple[DeviceState, str]:
    state, reason, _ = identify(rng, facts, argument="memmap=4G!12G", on_cmdline=on_cmdline,
                                persistent=persistent)
    return state, reason


def test_reason_command_line_lacks_the_option() -> None:
    state, reason = _state(DeviceFacts(bus=False), on_cmdline=False)
    assert state is DeviceState.MISSING
    assert reason == "this boot's command line lacks memmap=4G!12G: reboot to apply it"


def test_reason_misaligned() -> None:
    rng = MemRange.sized(1 * GiB, 511 * MiB)  # memmap=511M!1G: "misaligned, unable to map"
    state, reason = _state(DeviceFacts(bus=True), rng)
    assert state is DeviceState.MISSING and reason.startswith("misaligned:")
    region = NdRegion("region0", MemRange.sized(1 * GiB, 192 * MiB), ("namespace0.0",),
                      ("namespace0.0",))
    state, reason = _state(DeviceFacts(bus=True, regions=(region,)),
                           MemRange.sized(1 * GiB, 192 * MiB))
    assert reason.startswith("misaligned: region0 has namespace0.0 without a driver")


def test_reason_not_reserved_by_the_kernel() -> None:
    state, reason = _state(DeviceFacts(bus=True), persistent=())
    assert state is DeviceState.MISSING
    assert reason.startswith("the kernel did not reserve 0x300000000-0x3ffffffff")


def test_reason_driver_missing_without_nvdimm_bus() -> None:
    _, reason = _state(DeviceFacts(bus=False))
    assert reason.startswith("driver missing: there is no nvdimm bus")


def test_reason_driver_missing_when_nd_pmem_is_not_bound(tmp_path: Path) -> None:
    """The region exists (nd_e820 ran) but nd_pmem never bound its namespace."""
    copy = copy_machine("server-16g-memmap", tmp_path)
    namespace = copy.path("/sys/devices/platform/e820_pmem/ndbus0/region0/namespace0.0")
    (namespace / "driver").unlink()
    shutil.rmtree(namespace / "block")
    copy.path("/sys/block/pmem0").unlink()
    facts = read_devices(copy)
    assert facts.devices == () and facts.regions[0].unbound == ("namespace0.0",)
    state, reason = _state(facts)
    assert state is DeviceState.MISSING
    assert reason.startswith("driver missing: region0 has namespace0.0 with no driver bound; "
                             "load nd_pmem")


def test_reason_driver_missing_when_no_region_was_made(tmp_path: Path) -> None:
    facts = read_devices(machine("qemu-2g-pmem"))  # has a region, but at 1G
    _, reason = _state(facts)
    assert reason.startswith("driver missing: nd_e820 made no nvdimm region at 0x300000000")


def test_a_device_of_another_size_is_not_the_regions() -> None:
    facts = read_devices(machine("server-16g-memmap"))
    state, reason = _state(facts, MemRange.sized(12 * GiB, 2 * GiB))
    assert state is DeviceState.MISMATCH
    assert reason == ("pmem0 at 0x300000000 is 4 GiB, the region is 2 GiB: it is not this "
                      "region's device")


def test_a_device_without_dax(tmp_path: Path) -> None:
    copy = copy_machine("server-16g-memmap", tmp_path)
    copy.path("/sys/block/pmem0/queue/dax").write_text("0\n")
    state, reason = _state(read_devices(copy))
    assert state is DeviceState.NOT_DAX and "queue/dax is 0" in reason


def test_devices_at_no_configured_address_are_reported() -> None:
    facts = read_devices(machine("server-16g-2pmem"))
    assert [d.name for d in unmatched_devices(facts, [DATA])] == ["pmem0"]


# --- with the filesystem's mount ----------------------------------------------------------

DATA_XFS = parse_config("version: 1\nregions:\n  - {name: data, size: 4G, offset: 12G, "
                        "filesystem: {type: xfs, mountpoint: /pmem}}\n").require().regions[0]


def _mountinfo_without(copy: Machine, mountpoint: str, replace: tuple[str, str] = ("", "")
                       ) -> None:
    lines = copy.mountinfo.read_text().splitlines(keepends=True)
    kept = [line.replace(*replace) if replace[0] else line for line in lines
            if replace[0] or f" {mountpoint} " not in line]
    copy.mountinfo.write_text("".join(kept))


@pytest.mark.parametrize(("edit", "state", "words"), [
    (None, DeviceState.READY, "pmem1 mounted at /pmem with DAX"),
    (("drop", "/pmem"), DeviceState.NOT_MOUNTED, "pmem1 is present but /pmem is not mounted"),
    (("replace", "dax=always,inode64", "inode64"), DeviceState.NOT_DAX, "mounted without DAX"),
    (("replace", "259:1 / /pmem ", "259:0 / /pmem "), DeviceState.MISMATCH,
     "/pmem holds /dev/pmem1 (device 259:0), not pmem1 (device 259:1)"),
])
def test_region_state_with_its_mount(tmp_path: Path, edit: tuple[str, ...] | None,
                                     state: DeviceState, words: str) -> None:
    copy = copy_machine("server-16g-2pmem", tmp_path)
    if edit is not None and edit[0] == "drop":
        _mountinfo_without(copy, edit[1])
    elif edit is not None:
        _mountinfo_without(copy, "", (edit[1], edit[2]))
    status = match_region(DATA_XFS, DATA, read_device_facts(copy), argument="memmap=4G!12G",
                          on_cmdline=True)
    assert status.state is state
    assert words in status.reason


# --- pmemd plan ---------------------------------------------------------------------------


def test_plan_converged_when_every_region_is_mounted_with_dax() -> None:
    for tree in ("server-16g-2pmem", "server-16g-2pmem-reordered"):
        done = run_pmemd("plan", "--root", str(MACHINES / tree), "--config", EXAMPLE_CONFIG)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "data    pmem" in done.stdout and "ready" in done.stdout


def test_plan_is_degraded_and_says_which_region_and_why(tmp_path: Path) -> None:
    copy = copy_machine("server-16g-2pmem-reordered", tmp_path)
    _mountinfo_without(copy, "", ("rw,attr2,dax=always,inode64", "rw,attr2,inode64"))
    done = run_pmemd("plan", "--root", str(copy.root), "--config", EXAMPLE_CONFIG)
    assert done.returncode == 6, done.stdout + done.stderr
    assert "State: degraded" in done.stdout
    assert ("data    pmem0   not-dax  /pmem (xfs on pmem0) is mounted without DAX"
            in done.stdout)
    doc = json.loads(run_pmemd("plan", "--root", str(copy.root), "--config", EXAMPLE_CONFIG,
                               "--json").stdout)
    assert doc["state"] == "degraded"
    states = {d["region"]: (d["state"], d["device"]["name"]) for d in doc["devices"]}
    assert states == {"data": ("not-dax", "pmem0"), "cache": ("ready", "pmem1")}


def test_plan_is_degraded_when_a_device_never_appeared(tmp_path: Path) -> None:
    copy = copy_machine("server-16g-2pmem", tmp_path)
    copy.path("/sys/block/pmem0").unlink()  # the cache region's device
    done = run_pmemd("plan", "--root", str(copy.root), "--config", EXAMPLE_CONFIG)
    assert done.returncode == 6
    assert "cache   -       missing" in done.stdout
    assert "region0 at 0x280000000-0x2ffffffff has no pmem block device" in done.stdout


def test_as_a_user_the_addresses_are_unknown_not_missing() -> None:
    """``resource`` is root-only: a user's ``pmemd plan`` cannot match devices, and says so
    instead of calling the machine degraded."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as nobody")
    with tempfile.TemporaryDirectory(prefix="pmemd-user-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)
        tree = base / "machine"
        shutil.copytree(MACHINES / "server-16g-2pmem", tree, symlinks=True)
        for resource in tree.rglob("resource"):
            resource.chmod(0o400)
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
             "-m", "pmemd", "plan", "--root", str(tree), "--config", EXAMPLE_CONFIG, "--json"],
            capture_output=True, text=True, check=False, timeout=60, cwd=tmp)
    if "Permission denied" in done.stderr and "python" in done.stderr:
        pytest.skip("nobody cannot run this checkout's interpreter")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["state"] == "converged"
    assert {d["state"] for d in doc["devices"]} == {"unknown"}
    assert "readable by root only" in doc["devices"][0]["reason"]
