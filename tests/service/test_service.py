"""io.pmemd1 on a private bus with the shipped policy: what busctl and dbus-next clients see,
SetConfig's all-or-nothing write, and PropertiesChanged."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from dbus_next.constants import MessageType
from dbus_next.message import Message

from tests.conftest import REPO, run_pmemd
from tests.service.conftest import (
    CONFIG,
    CONVERGED,
    KERNEL,
    MACHINE_ID,
    make_machine,
    record_failed_trial,
)
from tests.service.harness import (
    BUS_NAME,
    SHIPPED_INTERFACES,
    TIMEOUT,
    PrivateBus,
    Reply,
    Running,
    acall,
    call,
    connect,
    serving,
)

MANAGER = "/io/pmemd1"
DATA = "/io/pmemd1/region/data"
FAST_LOG = "/io/pmemd1/region/fast_2dlog"
PROPS = "org.freedesktop.DBus.Properties"


def busctl(bus: PrivateBus, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["busctl", "--system", "--no-pager", *args], env=bus.env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def busctl_json(bus: PrivateBus, *args: str) -> Any:
    done = busctl(bus, "--json=short", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def prop(bus: PrivateBus, path: str, interface: str, name: str) -> Any:
    return call(bus.address, path, PROPS, "Get", "ss", [interface, name]).ok()[0].value


def manager(bus: PrivateBus, member: str, signature: str = "", *body: Any) -> Reply:
    return call(bus.address, MANAGER, "io.pmemd1.Manager", member, signature, body)


# --- reading ------------------------------------------------------------------------------


def test_busctl_sees_the_manager_and_one_object_per_region(bus: PrivateBus,
                                                          service: Running) -> None:
    tree = busctl(bus, "tree", BUS_NAME)
    assert tree.returncode == 0, tree.stderr
    assert DATA in tree.stdout and FAST_LOG in tree.stdout  # '-' escaped as _2d

    listing = busctl(bus, "introspect", BUS_NAME, MANAGER, "io.pmemd1.Manager")
    assert listing.returncode == 0, listing.stderr
    for member in ("GetPlan", "SetConfig", "Validate", "Apply", "ListRegions", "State",
                   "DesiredMemmap", "Warnings"):
        assert f".{member} " in listing.stdout
    assert '"changes-pending"' in listing.stdout

    state = busctl_json(bus, "get-property", BUS_NAME, MANAGER, "io.pmemd1.Manager", "State")
    assert state == {"type": "s", "data": "changes-pending"}
    desired = busctl_json(bus, "get-property", BUS_NAME, MANAGER, "io.pmemd1.Manager",
                          "DesiredMemmap")
    assert desired["data"] == ["memmap=512M!1G", "memmap=256M!1536M"]
    current = busctl_json(bus, "get-property", BUS_NAME, MANAGER, "io.pmemd1.Manager",
                          "CurrentMemmap")
    assert current["data"] == ["memmap=512M!1G"]


def test_region_properties_come_from_the_device_found_by_address(bus: PrivateBus,
                                                                 service: Running) -> None:
    data = busctl_json(bus, "call", BUS_NAME, DATA, PROPS, "GetAll", "s", "io.pmemd1.Region")
    values = {k: v["data"] for k, v in data["data"][0].items()}
    assert values == {
        "Name": "data", "Size": 512 << 20, "Offset": 1 << 30, "Memmap": "memmap=512M!1G",
        "Device": "/dev/pmem0", "Mountpoint": "/pmem", "FilesystemType": "xfs",
        "State": "ready", "StateReason": "pmem0 mounted at /pmem with DAX", "Dax": True,
        "Mode": "raw", "PageMap": "", "Align": 0, "CharacterDevice": ""}
    assert prop(bus, FAST_LOG, "io.pmemd1.Region", "Name") == "fast-log"
    assert prop(bus, FAST_LOG, "io.pmemd1.Region", "State") == "missing"
    reason = prop(bus, FAST_LOG, "io.pmemd1.Region", "StateReason")
    assert "lacks memmap=256M!1536M: reboot" in reason
    assert prop(bus, FAST_LOG, "io.pmemd1.Region", "Device") == ""

    listed = manager(bus, "ListRegions").ok()[0]
    assert listed == [
        ["data", DATA, 1 << 30, 512 << 20, "/dev/pmem0", "/pmem", "xfs", "ready"],
        ["fast-log", FAST_LOG, 1536 << 20, 256 << 20, "", "/pmem-log", "ext4", "missing"]]


def test_get_plan_is_the_document_pmemd_plan_prints(bus: PrivateBus, service: Running,
                                                    root: Path) -> None:
    over_dbus = json.loads(manager(bus, "GetPlan").ok()[0])
    cli = run_pmemd("plan", "--root", str(root), "--json")
    assert json.loads(cli.stdout) == over_dbus
    assert over_dbus["state"] == "changes-pending"
    assert [c["argument"] for c in over_dbus["changes"] if c["action"] == "add"] == [
        "memmap=256M!1536M"]


def test_memory_map_is_typed(bus: PrivateBus, service: Running) -> None:
    firmware, current = manager(bus, "GetMemoryMap").ok()
    usable = [(start, size) for start, size, kind, _ in firmware if kind == "usable"]
    assert usable == [(0, 0x9fc00), (0x100000, 0x7ffe0000 - 0x100000)]  # the qemu guest
    persistent = [(start, size) for start, size, kind, _ in current
                  if kind == "persistent-legacy"]
    assert persistent == [(1 << 30, 512 << 20)]


def test_validate_returns_warnings_or_locates_every_problem(bus: PrivateBus,
                                                            service: Running) -> None:
    warnings = manager(bus, "Validate", "s", CONVERGED).ok()[0]
    assert [code for code, _region, _message in warnings] == ["kaslr"]

    bad = "version: 1\nregions:\n  - name: data\n    size: 3X\n    offset: 1G\n"
    reply = manager(bus, "Validate", "s", bad)
    assert reply.error == "io.pmemd1.Error.InvalidConfig"
    assert reply.text.startswith("<input>:4:12: regions[0].size: '3X' is not a size")
    assert reply.text.endswith("        size: 3X\n               ^")  # source line, caret

    too_big = "version: 1\nregions:\n  - name: big\n    size: 4G\n"
    reply = manager(bus, "Validate", "s", too_big)
    assert reply.error == "io.pmemd1.Error.InvalidConfig"
    assert "<input>:" in reply.text and "big" in reply.text

    # busctl shows the same message
    done = busctl(bus, "call", BUS_NAME, MANAGER, "io.pmemd1.Manager", "Validate", "s", bad)
    assert done.returncode != 0 and "<input>:4:12: regions[0].size" in done.stderr


# --- PlanConfig ---------------------------------------------------------------------------


def _files(root: Path) -> dict[str, tuple[bytes, int] | None]:
    """Every file and directory where pmemd writes (the config and its backups, its state,
    the boot entries, /run), with its bytes and inode."""
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_ino) if p.is_file()
            else None for top in ("etc", "var", "run", "boot")
            for p in sorted((root / top).rglob("*"))}


@pytest.mark.parametrize("candidate", [
    CONVERGED,  # fast-log goes: its option leaves the boot entry
    CONFIG.replace("size: 256M", "size: 384M"),  # fast-log grows: a new option, a trial
    CONFIG + "boot:\n  bootloader: grubby\n",  # a bootloader the reading did not look at
], ids=["remove", "add", "other-bootloader"])
def test_plan_config_is_what_get_plan_says_once_the_text_is_the_config(
        bus: PrivateBus, workdir: Path, candidate: str) -> None:
    root = make_machine(workdir, systemd_boot=True)
    with serving(bus, root):
        current = manager(bus, "GetPlan").ok()[0]
        before = _files(root)
        planned = manager(bus, "PlanConfig", "s", candidate).ok()[0]
        assert _files(root) == before  # nothing written, not even a temporary file
        assert prop(bus, MANAGER, "io.pmemd1.Manager", "State") == "changes-pending"
        assert manager(bus, "GetPlan").ok()[0] == current
        assert planned != current
        (workdir / "candidate.yaml").write_text(candidate)
        cli = run_pmemd("plan", "--root", str(root), "--config", str(workdir / "candidate.yaml"),
                        "--json")
        assert json.loads(cli.stdout) == json.loads(planned)  # pmemd plan says the same
        assert manager(bus, "SetConfig", "sb", candidate, False).error is None
        assert manager(bus, "GetPlan").ok()[0] == planned  # the same document, to the byte
    assert set(json.loads(planned)) >= {"state", "changes", "bootloader", "trial"}


BAD_SIZE = "version: 1\nregions:\n  - name: data\n    size: 3X\n    offset: 1G\n"


@pytest.mark.parametrize("candidate", [
    BAD_SIZE,
    "version: 1\nregions:\n  - name: big\n    size: 4G\n",  # larger than the machine
    "version: 2\n",
    "",
], ids=["bad-size", "too-big", "version", "empty"])
def test_plan_config_refuses_what_validate_refuses_and_writes_nothing(
        bus: PrivateBus, service: Running, root: Path, candidate: str) -> None:
    before = _files(root)
    reply = manager(bus, "PlanConfig", "s", candidate)
    assert reply.error == "io.pmemd1.Error.InvalidConfig", reply
    assert reply.text.startswith("<input>:")
    refused = manager(bus, "Validate", "s", candidate)
    assert (reply.error, reply.text) == (refused.error, refused.text)
    assert _files(root) == before
    if candidate == BAD_SIZE:
        assert reply.text.startswith("<input>:4:12: regions[0].size: '3X' is not a size")
        assert reply.text.endswith("        size: 3X\n               ^")


def test_plan_config_judges_the_text_against_the_next_boot(bus: PrivateBus,
                                                            workdir: Path) -> None:
    """The boot entry carries an option pmemd did not write, which the running kernel
    lacks: PlanConfig, as GetPlan, judges the text against the next boot, and locates the
    region that option overlaps in the text."""
    root = make_machine(workdir, CONVERGED, systemd_boot=True)
    entry = root / f"boot/loader/entries/{MACHINE_ID}-{KERNEL}.conf"
    entry.write_text(entry.read_text().replace("memmap=512M!1G",
                                               "memmap=512M!1G memmap=64M$1600M"))
    with serving(bus, root):
        reply = manager(bus, "PlanConfig", "s", CONFIG)
    assert reply.error == "io.pmemd1.Error.InvalidConfig", reply
    assert reply.text.startswith("<input>:9:5: regions[1]: memmap=64M$1600M on the command "
                                 "line (not written by pmemd) overlaps region 'fast-log'")


def test_unknown_members_are_named_errors_and_the_service_keeps_serving(
        bus: PrivateBus, service: Running) -> None:
    reply = call(bus.address, MANAGER, PROPS, "Get", "ss", ["io.pmemd1.Manager", "Nope"])
    assert reply.error == "org.freedesktop.DBus.Error.UnknownProperty"
    reply = manager(bus, "Nope")
    assert reply.error == "org.freedesktop.DBus.Error.UnknownMethod"
    reply = call(bus.address, MANAGER, PROPS, "Set", "ssv",
                 ["io.pmemd1.Manager", "State", _variant("s", "converged")])
    assert reply.error is not None
    assert prop(bus, MANAGER, "io.pmemd1.Manager", "State") == "changes-pending"


def _variant(signature: str, value: Any) -> Any:
    from dbus_next.signature import Variant
    return Variant(signature, value)


def test_shipped_introspection_xml_is_what_the_service_exports(bus: PrivateBus,
                                                               service: Running) -> None:
    for path, interface in ((MANAGER, "io.pmemd1.Manager"), (DATA, "io.pmemd1.Region")):
        live_xml = call(bus.address, path, "org.freedesktop.DBus.Introspectable",
                        "Introspect").ok()[0]
        live = _members(ET.fromstring(live_xml), interface)
        shipped = _members(ET.parse(SHIPPED_INTERFACES / f"{interface}.xml").getroot(),
                           interface)
        assert shipped == live


def _members(node: ET.Element, interface: str) -> dict[str, Any]:
    found = next(i for i in node.iter("interface") if i.get("name") == interface)
    members: dict[str, Any] = {}
    for element in found:
        args = [(a.get("type"), a.get("direction", "in" if element.tag == "method" else "out"))
                for a in element.iter("arg")]
        members[f"{element.tag} {element.get('name')}"] = (
            element.get("type"), element.get("access"), args)
    return members


# --- SetConfig ----------------------------------------------------------------------------


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_ino) for p in sorted(directory.iterdir())}


@pytest.mark.parametrize(("text", "where"), [
    ("version: 1\nregions:\n  - name: data\n    size: 512M\n    offset: 1G\n  bad\n",
     "/etc/pmemd.yaml:7:1: not valid YAML"),
    ("version: 2\n", "/etc/pmemd.yaml:1:10: version"),
    ("version: 1\nregions:\n  - name: data\n    size: 512M\n    offset: 1G\n"
     "    filesystem: {type: btrfs, mountpoint: /pmem}\n", "regions[0].filesystem.type"),
    ("version: 1\nregions:\n  - name: big\n    size: 1G\n    offset: 3G\n", "big"),
    ("\xff\xfe", "/etc/pmemd.yaml:1:1"),
])
def test_set_config_with_a_bad_config_changes_nothing(bus: PrivateBus, service: Running,
                                                      root: Path, text: str,
                                                      where: str) -> None:
    before = _snapshot(root / "etc")
    reply = manager(bus, "SetConfig", "sb", text, False)
    assert reply.error == "io.pmemd1.Error.InvalidConfig", reply
    assert where in reply.text
    assert _snapshot(root / "etc") == before  # same bytes, same inode, no backup, no temp
    assert prop(bus, MANAGER, "io.pmemd1.Manager", "State") == "changes-pending"


def test_set_config_replaces_the_file_atomically_and_keeps_a_backup(
        bus: PrivateBus, service: Running, root: Path) -> None:
    config = root / "etc/pmemd.yaml"
    old_inode = config.stat().st_ino
    reply = manager(bus, "SetConfig", "sb", CONVERGED, False)
    assert reply.ok() == ["converged"]
    assert config.read_text() == CONVERGED
    assert config.stat().st_ino != old_inode  # renamed into place, never written in place
    assert oct(config.stat().st_mode & 0o777) == "0o644"
    assert (root / "etc/pmemd.yaml.pmemd-bak").read_text() == CONFIG
    assert (root / "etc/pmemd.yaml.pmemd-orig").read_text() == CONFIG  # the admin's, kept
    assert sorted(p.name for p in (root / "etc").iterdir()) == [
        "pmemd.yaml", "pmemd.yaml.pmemd-bak", "pmemd.yaml.pmemd-orig"]
    # what the service now says is what pmemd plan says about the new file
    cli = json.loads(run_pmemd("plan", "--root", str(root), "--json").stdout)
    assert json.loads(manager(bus, "GetPlan").ok()[0]) == cli
    tree = busctl(bus, "tree", BUS_NAME).stdout
    assert DATA in tree and FAST_LOG not in tree  # the region object went away


def _collect_signals(address: str, action: Any, *, until: int) -> list[Message]:
    """Subscribe to PropertiesChanged from io.pmemd1, run ``action`` (a coroutine function
    taking the bus), and return the first ``until`` signals (waiting for them)."""
    async def run() -> list[Message]:
        bus = await connect(address)
        got: list[Message] = []
        enough = asyncio.get_running_loop().create_future()

        def on_message(msg: Message) -> bool:
            if msg.message_type is MessageType.SIGNAL and msg.member == "PropertiesChanged":
                got.append(msg)
                if len(got) >= until and not enough.done():
                    enough.set_result(None)
            return False

        bus.add_message_handler(on_message)
        rule = ("type='signal',interface='org.freedesktop.DBus.Properties',"
                "member='PropertiesChanged'")
        (await acall(bus, "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
                     [rule], destination="org.freedesktop.DBus")).ok()
        await action(bus)
        await asyncio.wait_for(enough, TIMEOUT)
        bus.disconnect()  # type: ignore[no-untyped-call]
        return got
    return asyncio.run(run())


def test_properties_changed_arrives_when_set_config_changes_the_state(
        bus: PrivateBus, service: Running) -> None:
    async def set_config(client: Any) -> None:
        (await acall(client, MANAGER, "io.pmemd1.Manager", "SetConfig", "sb",
                     [CONVERGED, False])).ok()

    [signal] = _collect_signals(bus.address, set_config, until=1)
    assert signal.path == MANAGER
    interface, changed, _invalidated = signal.body
    assert interface == "io.pmemd1.Manager"
    assert changed["State"].value == "converged"
    assert changed["DesiredMemmap"].value == ["memmap=512M!1G"]
    assert changed["RebootRequired"].value is False
    assert "Version" not in changed  # only what changed


def test_an_edit_on_disk_is_seen_and_signalled_on_reload(bus: PrivateBus, service: Running,
                                                         root: Path) -> None:
    async def edit_and_reload(client: Any) -> None:
        (root / "etc/pmemd.yaml").write_text(CONVERGED.replace("xfs", "ext4"))
        (await acall(client, MANAGER, "io.pmemd1.Manager", "Reload")).ok()

    signals = _collect_signals(bus.address, edit_and_reload, until=2)
    by_path = {s.path: s.body[1] for s in signals}
    assert by_path[MANAGER]["State"].value == "converged"
    assert by_path[DATA]["FilesystemType"].value == "ext4"


def test_a_broken_config_on_disk_shows_as_invalid_with_its_problems(
        bus: PrivateBus, service: Running, root: Path) -> None:
    (root / "etc/pmemd.yaml").write_text("version: 1\nregions: 7\n")
    manager(bus, "Reload").ok()
    assert prop(bus, MANAGER, "io.pmemd1.Manager", "State") == "invalid-config"
    [problem] = prop(bus, MANAGER, "io.pmemd1.Manager", "Problems")
    message, key, file, line, column = problem
    assert (key, file, line, column) == ("regions", f"{root}/etc/pmemd.yaml", 2, 10)
    assert "list" in message  # regions must be a list
    reply = manager(bus, "GetPlan")
    assert reply.error == "io.pmemd1.Error.InvalidConfig" and ":2:10: regions" in reply.text
    assert "/io/pmemd1/region" not in busctl(bus, "tree", BUS_NAME).stdout


def test_service_refuses_a_second_instance(bus: PrivateBus, service: Running,
                                           root: Path) -> None:
    done = subprocess.run(
        _serve(root), env=bus.env, cwd=REPO, capture_output=True, text=True,
        timeout=TIMEOUT, check=False)
    assert done.returncode == 1
    assert "cannot own io.pmemd1 (exists): another process owns it" in done.stderr


def _serve(root: Path) -> list[str]:
    from tests.service.harness import serve_argv
    return serve_argv(root, 0)


def test_serve_without_a_bus_says_so(workdir: Path, root: Path) -> None:
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={workdir}/no-such-socket"}
    done = subprocess.run(_serve(root), env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    assert done.returncode == 1
    assert f"cannot connect to unix:path={workdir}/no-such-socket" in done.stderr


def test_trial_properties_follow_pmemds_state(bus: PrivateBus, service: Running,
                                             root: Path) -> None:
    """Trial and TrialReason say what state.json records of the last trial boot: none on
    a machine that never tried one, then what reconcile wrote (a failed trial here), and
    a property read right after the change already shows it."""
    assert prop(bus, MANAGER, "io.pmemd1.Manager", "Trial") == "none"
    assert prop(bus, MANAGER, "io.pmemd1.Manager", "TrialReason") == ""
    record_failed_trial(root, "the trial boot did not come up")
    assert prop(bus, MANAGER, "io.pmemd1.Manager", "Trial") == "failed"
    assert prop(bus, MANAGER, "io.pmemd1.Manager", "TrialReason") == \
        "the trial boot did not come up"


def test_retry_and_abort_with_no_trial_are_refused_and_change_nothing(
        bus: PrivateBus, service: Running, root: Path) -> None:
    """RetryTrial with no failed trial and AbortTrial with none armed: io.pmemd1.Error.Refused
    naming the Trial state, and nothing written."""
    state = root / "var/lib/pmemd/state.json"
    before = state.read_bytes() if state.exists() else None
    retry = manager(bus, "RetryTrial")
    assert retry.error == "io.pmemd1.Error.Refused", retry
    assert "no failed trial to retry (trial: none)" in retry.text
    abort = manager(bus, "AbortTrial")
    assert abort.error == "io.pmemd1.Error.Refused", abort
    assert "no armed trial to abort (trial: none)" in abort.text
    assert (state.read_bytes() if state.exists() else None) == before
