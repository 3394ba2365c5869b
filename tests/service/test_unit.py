"""The shipped unit, activation file and polkit actions: systemd accepts the unit, its
exposure is at most 4.0, and the files agree with each other and with the code."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pmemd.service.api import BUS_NAME
from pmemd.service.polkit import Action
from tests.conftest import REPO, install_host_systemd
from tests.service.harness import SHIPPED_ACTIONS, SHIPPED_ACTIVATION, TIMEOUT

UNIT = REPO / "systemd/pmemd.service"
MAX_EXPOSURE = 4.0


def unit_section(name: str) -> dict[str, list[str]]:
    """A unit file section; repeated keys keep every value."""
    values: dict[str, list[str]] = {}
    current = None
    for line in UNIT.read_text().splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif current == name and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    """systemd-analyze verify, in a root holding the host's units (dbus.socket, which
    Type=dbus pulls in), pmemd's units and an executable /usr/bin/pmemd."""
    units = install_host_systemd(tmp_path)
    for unit in (REPO / "systemd").glob("*.service"):
        shutil.copy(unit, units / unit.name)
    program = tmp_path / "usr/bin/pmemd"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={tmp_path}",
                           "pmemd.service"], capture_output=True, text=True, timeout=TIMEOUT,
                          check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_exposure_is_at_most_4() -> None:
    done = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                           str(UNIT)], capture_output=True, text=True, timeout=TIMEOUT,
                          check=False)
    match = re.search(r"Overall exposure level for pmemd\.service: ([0-9.]+)", done.stdout)
    assert match is not None, done.stdout + done.stderr
    assert float(match[1]) <= MAX_EXPOSURE, done.stdout


def test_unit_is_the_bus_activated_service() -> None:
    service = unit_section("Service")
    assert service["Type"] == ["dbus"]
    assert service["BusName"] == [BUS_NAME]
    assert service["ExecStart"][0].split()[:2] == ["/usr/bin/pmemd", "serve"]
    activation = configparser.ConfigParser()
    activation.read_string(SHIPPED_ACTIVATION.read_text())
    entry = activation["D-BUS Service"]
    assert entry["Name"] == BUS_NAME
    assert entry["SystemdService"] == UNIT.name
    assert entry["User"] == "root"
    assert entry["Exec"] == "/bin/false"  # never started outside systemd


@pytest.mark.parametrize("setting", [
    "CapabilityBoundingSet", "ProtectSystem", "ReadWritePaths", "DevicePolicy",
    "DeviceAllow", "PrivateNetwork", "RestrictAddressFamilies", "SystemCallFilter",
    "NoNewPrivileges"])
def test_every_sandbox_setting_is_explained(setting: str) -> None:
    """Each setting that grants or bounds a privilege sits under a comment saying why."""
    lines = UNIT.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{setting}="))
    comment = []
    for line in reversed(lines[:index]):
        if not line.startswith("#") and "=" in line:
            continue  # the settings of the same paragraph
        if not line.startswith("#"):
            break
        comment.append(line)
    assert len(" ".join(comment)) > 80, f"{setting}= has no explanation above it"


def test_polkit_actions_are_the_ones_the_service_checks() -> None:
    root = ET.parse(SHIPPED_ACTIONS).getroot()
    actions = {a.get("id"): a for a in root.iter("action")}
    assert set(actions) == {a.value for a in Action}
    for element in actions.values():
        assert element.findtext("description") and element.findtext("message")
    defaults = {child.tag: child.text for child in _defaults(actions[Action.FORMAT])}
    # destructive: an administrator every time, never remembered, never for free
    assert defaults == {"allow_any": "auth_admin", "allow_inactive": "auth_admin",
                        "allow_active": "auth_admin"}
    for kept in (Action.MANAGE, Action.MOUNT):
        values = {c.text for c in _defaults(actions[kept])}
        assert values <= {"auth_admin", "auth_admin_keep"}, kept


def _defaults(action: ET.Element) -> list[ET.Element]:
    found = action.find("defaults")
    assert found is not None
    return list(found)
