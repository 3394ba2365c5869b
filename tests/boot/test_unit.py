"""pmemd-reconcile.service and pmemd-trial.service pass `systemd-analyze verify` (with
Debian 12's own units, from the cached Debian root) and are guarded boot-time oneshots."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.boot.debianroot import tarball
from tests.conftest import REPO

UNITS = ("pmemd-reconcile.service", "pmemd-trial.service")
UNIT = REPO / "systemd" / "pmemd-reconcile.service"
TRIAL = REPO / "systemd" / "pmemd-trial.service"
SYSTEM = "/etc/systemd/system"


@pytest.fixture(scope="module")
def systemd_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Debian root's systemd units (enough for systemd-analyze --root) and the unit,
    with an executable at ExecStart's path (the .deb's /usr/bin/pmemd; the packaging tests
    verify the installed one)."""
    root = tmp_path_factory.mktemp("systemd-root")
    subprocess.run(["tar", "-C", str(root), "-xf", str(tarball()), "--wildcards",
                    "./usr/lib/systemd/system*", "./etc/systemd/*", "./lib", "./bin",
                    "./sbin", "./usr/bin/systemctl"], check=True)
    for name in UNITS:
        (root / SYSTEM.lstrip("/") / name).write_text((REPO / "systemd" / name).read_text())
    pmemd = root / "usr/bin/pmemd"
    pmemd.write_text("#!/bin/sh\nexec python3 -m pmemd \"$@\"\n")
    pmemd.chmod(0o755)
    return root


def analyze(root: Path, *argv: str, unit: str = UNITS[0]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *argv, f"--root={root}", f"{SYSTEM}/{unit}"],
                          capture_output=True, text=True, check=False, timeout=60)


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_passes(systemd_root: Path, unit: str) -> None:
    done = analyze(systemd_root, "verify", "--man=no", unit=unit)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_verify_would_catch_a_broken_unit(systemd_root: Path, tmp_path: Path) -> None:
    broken = systemd_root / SYSTEM.lstrip("/") / UNITS[0]
    good = broken.read_text()
    try:
        broken.write_text(good.replace("ExecStart=/usr/bin/pmemd", "ExecStart=/usr/bin/pmemdx"))
        done = analyze(systemd_root, "verify", "--man=no")
        assert done.returncode != 0 and "pmemdx is not executable" in done.stderr
    finally:
        broken.write_text(good)


@pytest.mark.parametrize("unit", UNITS)
def test_hardening_exposure_is_low(systemd_root: Path, unit: str) -> None:
    done = analyze(systemd_root, "security", "--offline=true", unit=unit)
    found = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d)",
                      done.stdout)
    assert found is not None, done.stdout + done.stderr
    assert float(found[1]) < 4.0, done.stdout


def _settings(unit: Path = UNIT) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
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


def test_the_trial_verification_runs_only_on_a_trial_boot_before_the_boot_counts_as_good(
        ) -> None:
    settings = _settings(TRIAL)
    assert settings["Type"] == ["oneshot"] and settings["RemainAfterExit"] == ["yes"]
    assert settings["ExecStart"] == ["/usr/bin/pmemd verify-trial"]
    assert settings["ConditionKernelCommandLine"] == ["pmemd.trial"]
    assert {"boot-complete.target", "multi-user.target"} <= set(settings["Before"][0].split())
    assert "pmemd-reconcile.service" in settings["After"][0].split()
    assert settings["RequiredBy"] == ["boot-complete.target"]
    assert "SuccessExitStatus" not in settings  # 6 (failed trial) fails the unit
    # it writes what reconcile writes: the same sandbox
    reconcile = _settings()
    for key in ("CapabilityBoundingSet", "ReadWritePaths", "SystemCallFilter",
                "ProtectSystem", "StateDirectory"):
        assert settings[key] == reconcile[key], key
