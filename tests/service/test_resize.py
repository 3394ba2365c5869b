"""Validating a change to a region whose option pmemd wrote and the running kernel carries:
``pmemd validate`` and the service's ``Validate`` judge it as ``pmemd plan`` and reconcile
do, knowing which options pmemd owns (its state) and what the next boot carries (the
bootloader), instead of calling pmemd's own option on the running command line a foreign
one that overlaps the region.

Found by the fleet test (tests/vm/test_fleet.py): after a rollout, ``--check --diff`` with a
region resized failed on the host with "memmap=256M!512M on the command line (not written
by pmemd) overlaps region 'scratch'".
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_pmemd
from tests.service.conftest import CONFIG, make_machine
from tests.service.harness import PrivateBus, call, serving

MANAGER = "/io/pmemd1"
RESIZED = CONFIG.replace("    size: 256M\n    offset: 1536M", "    size: 384M\n    offset: 1536M")
# not pmemd's: an option the admin wrote, where a region of the config now lies
FOREIGN = "memmap=128M!1792M"


def booted_with_fast_log(workdir: Path) -> Path:
    """A systemd-boot machine on which pmemd applied CONFIG (fast-log's option written and
    owned) and that has since rebooted with it."""
    root = make_machine(workdir, systemd_boot=True)
    done = run_pmemd("reconcile", "--root", str(root))
    assert done.returncode == 5, done.stderr  # reboot required
    assert "memmap=256M!1536M" in json.loads(
        (root / "var/lib/pmemd/state.json").read_text())["owned"]
    cmdline = root / "proc/cmdline"
    cmdline.write_text(cmdline.read_text().rstrip("\n") + " memmap=256M!1536M\n")
    return root


def test_pmemd_validate_accepts_resizing_a_region_over_its_own_running_option(
        workdir: Path) -> None:
    root = booted_with_fast_log(workdir)
    config = workdir / "resized.yaml"
    config.write_text(RESIZED)
    done = run_pmemd("validate", "--root", str(root), "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "fast-log 384 MiB at 0x60000000" in done.stdout
    # the plan agrees: the old option comes off, the new one goes on
    plan = json.loads(run_pmemd("plan", "--root", str(root), "--config", str(config),
                                "--json").stdout)
    assert plan["problems"] == []
    assert {(c["action"], c["argument"]) for c in plan["changes"]} >= {
        ("remove", "memmap=256M!1536M"), ("add", "memmap=384M!1536M")}


def add_foreign_option(root: Path) -> None:
    """The admin's own option, in the boot entry and so on the running command line."""
    for path in [root / "proc/cmdline", root / "etc/kernel/cmdline"]:
        path.write_text(path.read_text().rstrip("\n") + f" {FOREIGN}\n")
    [entry] = (root / "boot/loader/entries").glob("*.conf")
    entry.write_text("".join(line.rstrip("\n") + f" {FOREIGN}\n" if line.startswith("options")
                             else line for line in entry.read_text().splitlines(True)))


def test_a_foreign_option_over_the_region_is_still_refused(workdir: Path) -> None:
    root = booted_with_fast_log(workdir)
    add_foreign_option(root)
    config = workdir / "over-foreign.yaml"
    config.write_text(RESIZED)
    done = run_pmemd("validate", "--root", str(root), "--config", str(config))
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert f"{FOREIGN} on the command line (not written by pmemd) overlaps region " \
           "'fast-log'" in done.stderr


def test_the_services_validate_agrees(workdir: Path, bus: PrivateBus) -> None:
    root = booted_with_fast_log(workdir)
    with serving(bus, root):
        reply = call(bus.address, MANAGER, "io.pmemd1.Manager", "Validate", "s", [RESIZED])
        warnings = reply.ok()[0]
        assert all("not written by pmemd" not in str(w) for w in warnings), warnings
        add_foreign_option(root)
        refused = call(bus.address, MANAGER, "io.pmemd1.Manager", "Validate", "s", [RESIZED])
        assert refused.error is not None and "not written by pmemd" in refused.text, \
            (refused.error, refused.text)
