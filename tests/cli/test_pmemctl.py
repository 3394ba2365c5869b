"""pmemctl as a user runs it against the service on the private bus: text like hostnamectl,
JSON everywhere, exit statuses, and clear words when the service is absent or says no."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO, run_pmemd
from tests.service.conftest import CONVERGED
from tests.service.harness import TIMEOUT, PrivateBus, Running, as_nobody, call


def pmemctl(bus: PrivateBus | str, *args: str,
            nobody: bool = False) -> subprocess.CompletedProcess[str]:
    address = bus if isinstance(bus, str) else bus.address
    argv = [sys.executable, "-m", "pmemd.cli.ctl", *args]
    return subprocess.run(as_nobody(argv) if nobody else argv, cwd=REPO,
                          env={"DBUS_SYSTEM_BUS_ADDRESS": address, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def test_status_is_a_hostnamectl_like_table(bus: PrivateBus, service: Running,
                                            root: Path) -> None:
    done = pmemctl(bus)  # status is the default command
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "          State: changes-pending" in lines
    assert "Reboot required: yes" in lines
    assert "   Running with: memmap=512M!1G" in lines
    assert "      Next boot: memmap=512M!1G memmap=256M!1536M" in lines
    assert "        Regions: 2 configured, 1 ready" in lines
    assert f"         Config: {root}/etc/pmemd.yaml" in lines
    assert any(line.startswith("        Warning: KASLR is on") for line in lines)
    assert lines[-1] == "        Version: 0.1.0"
    assert pmemctl(bus, "status").stdout == done.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_status_json(bus: PrivateBus, service: Running, where: str) -> None:
    args = ["--json", "status"] if where == "before" else ["status", "--json"]
    document = json.loads(pmemctl(bus, *args).stdout)
    assert document["State"] == "changes-pending"
    assert document["DesiredMemmap"] == ["memmap=512M!1G", "memmap=256M!1536M"]
    assert document["Regions"] == ["data", "fast-log"]


def test_regions_table_says_why_a_region_is_not_ready(bus: PrivateBus,
                                                      service: Running) -> None:
    done = pmemctl(bus, "regions")
    assert done.returncode == 0, done.stderr
    header, data, fast_log, why = done.stdout.splitlines()
    assert header.split() == ["NAME", "SIZE", "RANGE", "DEVICE", "MOUNTPOINT", "MODE", "FS",
                              "STATE", "DAX"]
    assert data.split() == ["data", "512", "MiB", "0x40000000-0x5fffffff", "/dev/pmem0",
                            "/pmem", "raw", "xfs", "ready", "yes"]
    assert fast_log.split() == ["fast-log", "256", "MiB", "0x60000000-0x6fffffff", "-",
                                "/pmem-log", "raw", "ext4", "missing", "no"]
    assert why.startswith("fast-log: this boot's command line lacks memmap=256M!1536M")
    regions = json.loads(pmemctl(bus, "regions", "--json").stdout)
    assert [r["Name"] for r in regions] == ["data", "fast-log"]
    assert regions[0]["Dax"] is True and regions[0]["Device"] == "/dev/pmem0"


def test_plan_text_and_json(bus: PrivateBus, service: Running) -> None:
    done = pmemctl(bus, "plan")
    assert done.returncode == 0, done.stderr
    assert "  + memmap=256M!1536M  region 'fast-log'" in done.stdout
    assert "  = memmap=512M!1G  region 'data'" in done.stdout
    assert done.stdout.splitlines()[-1] == "State: changes-pending (a reboot is required)"
    document = json.loads(pmemctl(bus, "--json", "plan").stdout)
    over_dbus = json.loads(call(bus.address, "/io/pmemd1", "io.pmemd1.Manager",
                                "GetPlan").ok()[0])
    assert document == over_dbus


def test_validate_names_the_users_file_in_every_problem(bus: PrivateBus, service: Running,
                                                        workdir: Path) -> None:
    good = workdir / "good.yaml"
    good.write_text(CONVERGED)
    done = pmemctl(bus, "validate", str(good))
    assert done.returncode == 0
    assert done.stdout == f"{good}: valid\n"
    assert done.stderr.startswith("warning: KASLR is on")

    done = pmemctl(bus, "validate", str(EXAMPLES / "pmemd.yaml"))  # made for 16 GiB
    assert done.returncode == 3
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"{EXAMPLES / 'pmemd.yaml'}:16:13: regions[0].offset: ")
    assert "<input>" not in done.stderr
    document = json.loads(pmemctl(bus, "validate", "--json",
                                  str(EXAMPLES / "pmemd.yaml")).stdout)
    assert document["valid"] is False and document["errors"][0] == first

    done = pmemctl(bus, "validate", str(workdir / "missing.yaml"))
    assert done.returncode == 1
    assert done.stderr == f"pmemctl: {workdir}/missing.yaml: No such file or directory\n"


def test_unknown_region_lists_the_configured_ones(bus: PrivateBus, service: Running) -> None:
    done = pmemctl(bus, "mount", "nope")
    assert done.returncode == 1
    assert done.stderr == "pmemctl: no region 'nope' (configured: data, fast-log)\n"


def test_refusals_are_said_as_such(bus: PrivateBus, service: Running) -> None:
    done = pmemctl(bus, "apply", nobody=True)
    assert done.returncode == 1
    assert done.stderr.startswith("pmemctl: access denied: not allowed to change pmemd's "
                                  "configuration")
    done = pmemctl(bus, "format", "data")  # root: polkit agrees, the region is mounted
    assert done.returncode == 1
    assert done.stderr.startswith("pmemctl: region 'data' is mounted at /pmem")
    done = pmemctl(bus, "umount", "data")
    assert done.returncode == 1
    assert "not on the running system" in done.stderr


def test_apply_dry_run_is_open_to_nobody(bus: PrivateBus, workdir: Path) -> None:
    from tests.service.conftest import make_machine
    from tests.service.harness import serving

    root = make_machine(workdir / "boot", systemd_boot=True)
    with serving(bus, root):
        done = pmemctl(bus, "apply", "--dry-run", nobody=True)
        assert done.returncode == 0, done.stderr
        assert "Would write" in done.stdout
        assert done.stdout.rstrip().endswith("State: changes pending: run without --dry-run "
                                             "to make them")
        document = json.loads(pmemctl(bus, "apply", "--dry-run", "--json").stdout)
        assert document["state"] == "changes-pending" and document["dry_run"] is True


def test_service_absent(bus: PrivateBus) -> None:
    done = pmemctl(bus, "status")
    assert done.returncode == 1
    assert done.stderr.startswith("pmemctl: the pmemd service (io.pmemd1) is not available "
                                  "on the system bus and cannot be started by it: ")
    assert "Is pmemd installed?" in done.stderr


def test_no_bus_at_all(workdir: Path) -> None:
    done = pmemctl(f"unix:path={workdir}/nothing", "status")
    assert done.returncode == 1
    assert done.stderr.startswith(f"pmemctl: cannot connect to the system bus "
                                  f"(unix:path={workdir}/nothing): ")
    assert "Traceback" not in done.stderr


def test_usage_errors_exit_2(workdir: Path) -> None:
    done = pmemctl(f"unix:path={workdir}/nothing", "frobnicate")
    assert done.returncode == 2
    done = pmemctl(f"unix:path={workdir}/nothing", "mount")
    assert done.returncode == 2 and "NAME" in done.stderr


BAD_REGION = """\
version: 1
boot:
  bootloader: {bootloader}
regions:
  - name: data
    size: 512M
    offset: 1G
  - name: typo
    size: 0256M
    offset: 1536M
"""


@pytest.mark.parametrize(("config", "bootloader"), [
    ("version: 1\nregions: 7\n", "kernel-install ("),  # nothing usable: auto-detected
    (BAD_REGION.format(bootloader="auto"), "kernel-install ("),
    # The usable part of the config names the bootloader, and it is not there.
    (BAD_REGION.format(bootloader="grubby"), "none detected (boot.bootloader is grubby, but"),
])
def test_status_of_an_invalid_config_still_shows_the_boot(bus: PrivateBus, workdir: Path,
                                                          config: str, bootloader: str) -> None:
    """What needs no valid config — the running command line's memmap= options and the
    bootloader — is shown while the config is invalid."""
    from tests.service.conftest import make_machine
    from tests.service.harness import serving

    root = make_machine(workdir / "boot", config, systemd_boot=True)
    with serving(bus, root):
        done = pmemctl(bus, "status")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert "          State: invalid-config" in lines
        assert "   Running with: memmap=512M!1G" in lines
        assert f"     Bootloader: {bootloader}" in done.stdout, done.stdout
        assert "      Next boot: no memmap= option" in lines  # nothing is desired yet
        assert any(line.startswith("        Problem: ") for line in lines)


def test_validate_of_many_problems_on_one_line_is_a_bounded_reply(
        bus: PrivateBus, service: Running, workdir: Path) -> None:
    """8 KB sent by anyone: the reply used to be ~48 MB (every problem with the whole line),
    which the bus refused, taking the service off it."""
    config = workdir / "long.yaml"
    config.write_text("version: 1\nregions: [" + ",".join(["x"] * 4_000) + "]\n")
    done = pmemctl(bus, "validate", str(config), nobody=True)
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stderr.startswith(f"{config}:2:")
    assert len(done.stderr) < 64 * 1024
    assert pmemctl(bus, "status").returncode == 0  # still there for everyone else


@pytest.mark.parametrize("what", ["fifo", "/dev/zero", "directory"])
def test_validate_reads_only_a_regular_file_of_bounded_size(bus: PrivateBus, service: Running,
                                                            workdir: Path, what: str) -> None:
    """/dev/zero used to end in a MemoryError, a FIFO in a wait without end."""
    path = {"fifo": workdir / "fifo", "/dev/zero": Path("/dev/zero"),
            "directory": workdir}[what]
    if what == "fifo":
        os.mkfifo(path)
    done = pmemctl(bus, "validate", str(path))
    kind = {"fifo": "a FIFO", "/dev/zero": "a character device", "directory": "a directory"}
    assert (done.returncode, done.stderr) == (
        1, f"pmemctl: {path}: is {kind[what]}, not a regular file\n")


def test_validate_refuses_a_file_over_the_size_limit(bus: PrivateBus, service: Running,
                                                     workdir: Path) -> None:
    big = workdir / "big.yaml"
    big.write_bytes(b"version: 1\n" + b"#" * (2 << 20) + b"\n")
    done = pmemctl(bus, "validate", str(big))
    assert (done.returncode, done.stderr) == (
        1, f"pmemctl: {big}: larger than 1 MiB (1048576 bytes), the most pmemd reads: "
           f"{big.stat().st_size} bytes\n")


@pytest.mark.parametrize(("data", "where"), [
    (b"version: 1\nboot:\n  reboot: ne\x00ver\n", "3:13: character U+0000 is not allowed"),
    (b"version: 1\nregions:\n  - name: caf\xe9\n", "3:14: not UTF-8: byte 0xe9 cannot be "
                                                    "decoded"),
])
def test_validate_locates_bytes_a_config_cannot_hold(bus: PrivateBus, service: Running,
                                                     workdir: Path, data: bytes,
                                                     where: str) -> None:
    """A NUL byte or a byte that is not UTF-8 used to end in a traceback (D-Bus strings
    hold neither)."""
    config = workdir / "bad.yaml"
    config.write_bytes(data)
    done = pmemctl(bus, "validate", str(config))
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith(f"{config}:{where}")
    assert "Traceback" not in done.stderr
    document = json.loads(pmemctl(bus, "validate", "--json", str(config)).stdout)
    assert document["valid"] is False and document["errors"][0].startswith(f"{config}:{where}")
    said = run_pmemd("validate", "--root", str(workdir), "--config", str(config))
    assert said.stderr.splitlines()[0] == done.stderr.splitlines()[0]  # in the same words


def test_trial_status_retry_and_abort(bus: PrivateBus, service: Running, root: Path) -> None:
    """pmemctl trial: the Trial property in words (and in pmemctl status once there is
    one); retry and abort with nothing to act on are refusals, said as such (exit 1)."""
    done = pmemctl(bus, "trial")
    assert (done.returncode, done.stdout) == (0, "Trial boot: none\n"), done.stderr
    assert "Trial boot" not in pmemctl(bus).stdout
    for action, says in (("retry", "no failed trial to retry"),
                         ("abort", "no armed trial to abort")):
        refused = pmemctl(bus, "trial", action)
        assert refused.returncode == 1 and says in refused.stderr, refused.stderr
    state = root / "var/lib/pmemd/state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({
        "version": 1, "bootloader": "update-grub", "owned": [], "retired": [],
        "pending": None, "degraded": None,
        "trial": {"state": "failed", "digest": "d1", "options": [], "armed_on": "a",
                  "booted": "b", "reason": "the trial boot did not come up"}}))
    failed = pmemctl(bus, "trial", "status")
    assert failed.stdout == "Trial boot: failed: the trial boot did not come up\n"
    assert json.loads(pmemctl(bus, "trial", "--json").stdout) == {
        "Trial": "failed", "TrialReason": "the trial boot did not come up"}
    assert "     Trial boot: failed: the trial boot did not come up" in \
        pmemctl(bus).stdout.splitlines()
