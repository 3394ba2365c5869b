"""pmemd-reconcile.service passes `systemd-analyze verify` (with Debian 12's own units,
from the cached Debian root) and is a guarded boot-time oneshot."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.boot.debianroot import tarball
from tests.conftest import REPO

UNIT = REPO / "systemd" / "pmemd-reconcile.service"
INSTALLED = "/etc/systemd/system/pmemd-reconcile.service"


@pytest.fixture(scope="module")
def systemd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Debian root's systemd units (enough for systemd-analyze --root) and the unit,
    with an executable at ExecStart's path (the .deb's /usr/bin/pmemd; the packaging tests
    verify the installed one)."""
    root = tmp_path_factory.mktemp("systemd-root")
    subprocess.run(["tar", "-C", str(root), "-xf", str(tarball()), "--wildcards",
                    "./usr/lib/systemd/system*", "./etc/systemd/*", "./lib", "./bin",
                    "./sbin", "./usr/bin/systemctl"], check=True)
    target = root / INSTALLED.lstrip("/")
    target.write_text(UNIT.read_text())
    pmemd = root / "usr/bin/pmemd"
    pmemd.write_text("#!/bin/sh\nexec python3 -m pmemd \"$@\"\n")
    pmemd.chmod(0o755)
    return root


def analyze(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *argv, f"--root={root}", INSTALLED],
                          capture_output=True, text=True, check=False, timeout=60)


def test_systemd_analyze_verify_passes(systemd_root: Path) -> None:
    done = analyze(systemd_root, "verify", "--man=no")
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_verify_would_catch_a_broken_unit(systemd_root: Path, tmp_path: Path) -> None:
    broken = systemd_root / INSTALLED.lstrip("/")
    good = broken.read_text()
    try:
        broken.write_text(good.replace("ExecStart=/usr/bin/pmemd", "ExecStart=/usr/bin/pmemdx"))
        done = analyze(systemd_root, "verify", "--man=no")
        assert done.returncode != 0 and "pmemdx is not executable" in done.stderr
    finally:
        broken.write_text(good)


def test_hardening_exposure_is_low(systemd_root: Path) -> None:
    done = analyze(systemd_root, "security", "--offline=true")
    found = re.search(r"Overall exposure level for pmemd-reconcile.service: (\d+\.\d)",
                      done.stdout)
    assert found is not None, done.stdout + done.stderr
    assert float(found[1]) < 4.0, done.stdout


def _settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_a_guarded_boot_time_oneshot_that_can_write_what_it_must() -> None:
    settings = _settings()
    assert settings["Type"] == ["oneshot"] and settings["RemainAfterExit"] == ["yes"]
    assert settings["ExecStart"] == ["/usr/bin/pmemd reconcile"]
    assert settings["ConditionPathExists"] == ["/etc/pmemd.yaml"]
    assert "/boot" in settings["RequiresMountsFor"][0].split()
    assert settings["SuccessExitStatus"] == ["5"]  # reboot required is not a failure
    assert settings["StateDirectory"] == ["pmemd"] and settings["RuntimeDirectory"] == ["pmemd"]
    assert settings["ProtectSystem"] == ["strict"]
    writable = settings["ReadWritePaths"][0].split()
    for path in ("-/boot", "-/efi", "-/etc/default", "-/etc/kernel", "-/run"):
        assert path in writable
    assert "PrivateDevices" not in settings  # grub-probe reads the boot disk
