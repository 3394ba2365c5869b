"""pmemd validate / memmap / plan as a user runs them: output, JSON documents, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, FIXTURES, MACHINES, REPO, run_pmemd

EXAMPLE = str(EXAMPLES / "pmemd.yaml")
SERVER = str(MACHINES / "server-16g")
BOOTED = str(MACHINES / "server-16g-memmap")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- memmap -------------------------------------------------------------------------------


def test_memmap_shows_the_map_the_kernel_and_candidates() -> None:
    done = run_pmemd("memmap", "--root", SERVER)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "0x0000000100000000  0x00000003ffffffff  12 GiB   System RAM" in out
    assert "Persistent memory on this boot" in out and ": none" in out
    assert "Kernel image on this boot: 0x1a000000-0x1cbfffff (44 MiB)" in out
    assert "0x100000000-0x3ffffffff  12 GiB   memmap=12G!4G" in out


def test_memmap_on_a_booted_machine_shows_the_active_pmem() -> None:
    done = run_pmemd("memmap", "--root", BOOTED)
    assert "Persistent memory on this boot" in done.stdout
    assert "0x300000000-0x3ffffffff (4 GiB)" in done.stdout
    # the active range is no longer a candidate
    assert "0x100000000-0x2ffffffff  8 GiB    memmap=8G!4G" in done.stdout


def test_memmap_json_document() -> None:
    done = run_pmemd("memmap", "--root", SERVER, "--json", "--alignment", "1G")
    doc = json.loads(done.stdout)
    assert doc["version"] == 1
    assert doc["alignment"] == 1 << 30
    assert doc["usable_total"] == 16105602048
    assert doc["persistent"] == []
    assert doc["candidates"][0]["memmap"] == "memmap=12G!4G"
    assert doc["candidates"][1]["memmap"] == "memmap=1G!1G"
    assert {e["type"] for e in doc["firmware"]} == {"usable", "reserved"}


def test_memmap_from_pasted_dmesg() -> None:
    done = run_pmemd("memmap", "--dmesg", str(FIXTURES / "dmesg/reference-16g.txt"))
    assert done.returncode == 0, done.stderr
    assert "reference-16g.txt (BIOS-e820)" in done.stdout
    assert "0x100000000-0x3ffffffff (12 GiB)" in done.stdout  # persistent per the user: lines


def test_memmap_from_stdin() -> None:
    text = (FIXTURES / "dmesg/qemu-2g-memmap.txt").read_text()
    done = run_pmemd("memmap", "--dmesg", "-", "--json", stdin=text)
    doc = json.loads(done.stdout)
    assert doc["persistent"][0]["start_hex"] == "0x40000000"


def test_memmap_bad_dmesg_names_file_and_line() -> None:
    path = FIXTURES / "dmesg/malformed.txt"
    done = run_pmemd("memmap", "--dmesg", str(path))
    assert done.returncode == 1
    assert f"pmemd: {path}:1: empty or reversed range" in done.stderr


def test_memmap_without_a_firmware_map(tmp_path: Path) -> None:
    done = run_pmemd("memmap", "--root", str(tmp_path))
    assert done.returncode == 1
    assert "no firmware memory map" in done.stderr and "--dmesg FILE" in done.stderr


def test_memmap_suggests_ranges_at_the_configured_alignment(tmp_path: Path) -> None:
    config = write(tmp_path / "pmemd.yaml", "version: 1\nmemory:\n  alignment: 1G\n")
    done = run_pmemd("memmap", "--root", SERVER, "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["alignment"] == 1 << 30
    # the command line still wins over the config
    done = run_pmemd("memmap", "--root", SERVER, "--config", str(config), "--json",
                     "--alignment", "2M")
    assert json.loads(done.stdout)["alignment"] == 2 << 20


def test_memmap_without_a_config_uses_the_default_alignment() -> None:
    done = run_pmemd("memmap", "--root", SERVER, "--json")  # the tree has no /etc/pmemd.yaml
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["alignment"] == 128 << 20
    assert done.stderr == ""


def test_memmap_with_a_broken_config_says_which_alignment_it_used(tmp_path: Path) -> None:
    config = write(tmp_path / "pmemd.yaml",
                   "version: 1\nmemory:\n  alignment: 256M\nregions:\n  - name: x\n    size: 4X\n")
    done = run_pmemd("memmap", "--root", SERVER, "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["alignment"] == 256 << 20
    assert "using its memory.alignment 256M" in done.stderr
    missing = run_pmemd("memmap", "--root", SERVER, "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 3
    assert "nope.yaml:1:1: no such file" in missing.stderr


@pytest.mark.parametrize("value", ["1M", "3M", "banana"])
def test_memmap_bad_alignment_is_a_usage_error(value: str) -> None:
    done = run_pmemd("memmap", "--root", SERVER, "--alignment", value)
    assert done.returncode == 2
    assert "--alignment" in done.stderr


# --- plan ---------------------------------------------------------------------------------


def test_plan_on_the_demo_machine() -> None:
    done = run_pmemd("plan", "--root", SERVER, "--config", EXAMPLE)
    assert done.returncode == 4, done.stderr
    out = done.stdout
    assert "cache  0x280000000-0x2ffffffff  2 GiB  auto    memmap=2G!10G" in out
    assert "data   0x300000000-0x3ffffffff  4 GiB  config  memmap=4G!12G" in out
    assert "+ memmap=4G!12G" in out and "+ memmap=2G!10G" in out
    assert "KASLR is on" in out
    assert "State: changes pending" in out


def test_plan_json_is_a_stable_document() -> None:
    done = run_pmemd("plan", "--root", SERVER, "--config", EXAMPLE, "--json")
    doc = json.loads(done.stdout)
    assert list(doc) == ["version", "state", "reboot_required", "regions", "desired", "running",
                         "changes", "foreign", "memory", "warnings", "problems", "devices",
                         "unmatched_devices", "filesystems", "bootloader", "trial"]
    assert doc["bootloader"]["backend"] is None  # the demo tree has no bootloader files
    assert [(d["region"], d["state"]) for d in doc["devices"]] == [("cache", "missing"),
                                                                   ("data", "missing")]
    assert doc["state"] == "changes-pending"
    assert doc["desired"] == ["memmap=2G!10G", "memmap=4G!12G"]
    data = doc["regions"][1]
    assert data == {
        "name": "data", "start": 12 << 30, "end": (16 << 30) - 1, "size": 4 << 30,
        "start_hex": "0x300000000", "end_hex": "0x3ffffffff", "placement": "config",
        "memmap": "memmap=4G!12G", "on_running_cmdline": False, "namespace": {"mode": "raw"},
        "filesystem": {"type": "xfs", "mountpoint": "/pmem", "options": ["noatime"],
                       "on_boot": "recreate"},
    }
    assert doc["changes"][0] == {"action": "add", "argument": "memmap=2G!10G",
                                 "reason": "region 'cache' (placed by pmemd; pin it with "
                                           "'offset: 10G')"}
    assert [w["code"] for w in doc["warnings"]] == ["kaslr"]
    # no bootloader in the demo tree: a change could not be tried once first
    assert doc["trial"] == {"state": "none", "reason": "", "next_change": "direct",
                            "why": "no trial boot here (no bootloader detected): the default "
                                   "entry is changed directly"}


def test_plan_converged_exit_zero(tmp_path: Path) -> None:
    cfg = write(tmp_path / "pmemd.yaml", "version: 1\nregions:\n  - {name: data, size: 4G, "
                                         "offset: 12G}\n")
    done = run_pmemd("plan", "--root", BOOTED, "--config", str(cfg))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "= memmap=4G!12G" in done.stdout
    assert "State: converged" in done.stdout


def test_plan_reads_the_config_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "machine"
    shutil.copytree(SERVER, root, symlinks=True)
    write(root / "etc/pmemd.yaml", "version: 1\nregions:\n  - {name: x, size: 1G}\n")
    done = run_pmemd("plan", "--root", str(root))
    assert done.returncode == 4, done.stderr
    assert f"Config:   {root}/etc/pmemd.yaml (1 regions)" in done.stdout


def test_plan_invalid_config_exit_three_with_location(tmp_path: Path) -> None:
    cfg = write(tmp_path / "pmemd.yaml", "version: 1\nregions:\n  - name: data\n    size: 4X\n")
    done = run_pmemd("plan", "--root", SERVER, "--config", str(cfg))
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.startswith(f"{cfg}:4:12: regions[0].size: '4X' is not a size")


def test_plan_machine_problem_exit_three(tmp_path: Path) -> None:
    cfg = write(tmp_path / "pmemd.yaml", "version: 1\nregions:\n  - {name: d, size: 4G, "
                                         "offset: 16G}\n")
    done = run_pmemd("plan", "--root", SERVER, "--config", str(cfg), "--json")
    assert done.returncode == 3
    doc = json.loads(done.stdout)
    assert doc["state"] == "invalid-config"
    (problem,) = doc["problems"]
    assert problem["key"] == "regions[0].offset"
    assert (problem["line"], problem["column"]) == (3, 33)


def test_missing_config_file(tmp_path: Path) -> None:
    done = run_pmemd("plan", "--root", SERVER, "--config", str(tmp_path / "nope.yaml"))
    assert done.returncode == 3
    assert "nope.yaml:1:1: no such file" in done.stderr


# --- validate -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [EXAMPLES / "pmemd.yaml", REPO / "etc/pmemd.yaml"])
def test_shipped_configs_validate(path: Path) -> None:
    done = run_pmemd("validate", "--root", SERVER, "--config", str(path))
    assert done.returncode == 0, done.stderr
    assert f"{path}: valid" in done.stdout


def test_validate_reports_a_misplaced_region(tmp_path: Path) -> None:
    cfg = write(tmp_path / "pmemd.yaml", "version: 1\nregions:\n  - name: d\n    size: 2G\n"
                                         "    offset: 2G\n")
    done = run_pmemd("validate", "--root", SERVER, "--config", str(cfg))
    assert done.returncode == 3
    assert f"{cfg}:5:13: regions[0].offset: region 'd' (0x80000000-0xffffffff (2 GiB)) is " \
           "not inside usable RAM" in done.stderr
    assert "        offset: 2G\n                ^" in done.stderr


def test_validate_without_a_machine_checks_the_file_only(tmp_path: Path) -> None:
    done = run_pmemd("validate", "--root", str(tmp_path), "--config", EXAMPLE)
    assert done.returncode == 0
    assert "machine checks skipped" in done.stderr


def test_version() -> None:
    done = run_pmemd("--version")
    assert done.returncode == 0 and done.stdout.startswith("pmemd ")


def _uncommented(lines: list[str], start: int) -> None:
    """Uncomment the block of commented lines from ``start`` on (the first '#' of each
    taken away), as an admin does."""
    end = start
    while end < len(lines) and lines[end].startswith("#"):
        lines[end] = lines[end][1:]
        end += 1
    assert end > start


@pytest.mark.parametrize("memory", [False, True])
def test_the_shipped_example_validates_when_uncommented(tmp_path: Path, memory: bool) -> None:
    """Its comment said "uncomment" over a second 'regions:' key: a duplicate key."""
    lines = (REPO / "etc/pmemd.yaml").read_text().splitlines()
    instruction = next(n for n, line in enumerate(lines) if "(uncomment" in line)
    _uncommented(lines, instruction + 1)  # the example, as the comment says
    if memory:  # and the optional memory settings
        _uncommented(lines, lines.index("#memory:"))
    config = write(tmp_path / "pmemd.yaml", "\n".join(lines) + "\n")
    done = run_pmemd("validate", "--root", SERVER, "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{config}: valid (1 regions: data 4 GiB at 0x300000000)\n"


def test_plan_says_what_was_odd_about_the_firmware_map(tmp_path: Path) -> None:
    """A firmware map whose reserved range lies inside usable RAM is read as the kernel
    reads it (reserved wins) — and `pmemd plan` says so, as `pmemd memmap` does, in its
    text and as a warning with a stable code in --json."""
    root = tmp_path / "machine"
    shutil.copytree(SERVER, root, symlinks=True)
    odd = root / "sys/firmware/memmap/8"
    odd.mkdir()
    write(odd / "start", "0x380000000\n")
    write(odd / "end", "0x3803fffff\n")
    write(odd / "type", "Reserved\n")
    cfg = write(tmp_path / "pmemd.yaml", "version: 1\nregions:\n  - {name: d, size: 1G, "
                                         "offset: 8G}\n")
    text = run_pmemd("plan", "--root", str(root), "--config", str(cfg))
    assert text.returncode == 4, text.stderr
    assert "firmware memory map" in text.stdout and "claimed by 2 entries" in text.stdout, \
        text.stdout
    doc = json.loads(run_pmemd("plan", "--root", str(root), "--config", str(cfg),
                               "--json").stdout)
    (odd_map,) = [w for w in doc["warnings"] if w["code"] == "firmware-map-odd"]
    assert "0x380000000" in odd_map["message"]
    plain = json.loads(run_pmemd("plan", "--root", SERVER, "--config", str(cfg),
                                 "--json").stdout)
    assert "firmware-map-odd" not in [w["code"] for w in plain["warnings"]]
