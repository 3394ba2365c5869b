"""pmemd on hostile and careless input, as a user runs it: every bad input is a clear,
located error with the documented exit status, bounded in what it writes and the memory
it takes, and never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import MACHINES
from tests.hostile import pmemd_argv, run_measured

SERVER = str(MACHINES / "server-16g")
# What pmemd may cost on any input here: a safety bound, far above a normal run (about
# 20 MiB peak and a few hundred bytes written).
OUTPUT_BOUND = 64 * 1024
RSS_BOUND_KIB = 100 * 1024


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# Many problems on one long line: each used to be shown with the whole line.
LONG_LINES = {
    # 8,000 regions (16 KB): 193 MB written, 600 MB peak before; now over the region limit
    "8000 regions": "version: 1\nregions: [" + ",".join(["x"] * 8_000) + "]\n",
    # 1,000 bad regions, under the limit: 1,000 problems on one 2 KB line
    "1000 regions": "version: 1\nregions: [" + ",".join(["x"] * 1_000) + "]\n",
    # 20,000 unknown keys on one 120 KB line
    "20000 keys": "version: 1\nboot: {" + ", ".join(f"k{i}: 1" for i in range(20_000)) + "}\n",
}


@pytest.mark.parametrize("case", sorted(LONG_LINES))
def test_problems_on_a_long_line_have_bounded_output(case: str, tmp_path: Path) -> None:
    config = write(tmp_path / "pmemd.yaml", LONG_LINES[case])
    done = run_measured(pmemd_argv("validate", "--root", SERVER, "--config", str(config)))
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stderr.startswith(f"{config}:2:")
    assert "Traceback" not in done.stderr
    assert done.output_bytes < OUTPUT_BOUND, done.output_bytes
    assert done.max_rss_kib < RSS_BOUND_KIB, done.max_rss_kib


@pytest.mark.parametrize(("count", "expected"), [
    (5_000, ":4:1: regions: 5000 regions; pmemd manages at most 1024"),
    (24_500, ":7145:23: more than 50000 YAML nodes"),
])
def test_too_many_regions_is_one_clear_error(tmp_path: Path, count: int,
                                             expected: str) -> None:
    """24,500 pinned regions in 1 MiB: about 20 s of comparing pairs before."""
    lines = ["version: 1", "memory: {alignment: 2M}", "regions:"]
    lines += [f"- {{name: r{i}, size: 2M, offset: {(i + 1) * 2}M}}" for i in range(count)]
    config = write(tmp_path / "pmemd.yaml", "\n".join(lines) + "\n")
    done = run_measured(pmemd_argv("validate", "--root", SERVER, "--config", str(config)),
                        timeout=10)  # a safety bound: it takes well under a second
    assert done.returncode == 3
    assert done.stderr.startswith(f"{config}{expected}")
    assert done.stderr.count("\n") == 3  # the problem, its line and the caret
    assert done.max_rss_kib < RSS_BOUND_KIB


# --- what the config path may be -----------------------------------------------------------


def test_a_fifo_as_the_config_is_refused_not_waited_for(tmp_path: Path) -> None:
    fifo = tmp_path / "pmemd.yaml"
    os.mkfifo(fifo)
    done = run_measured(pmemd_argv("validate", "--root", SERVER, "--config", str(fifo)),
                        timeout=20)  # it used to wait forever for a writer
    assert done.returncode == 3
    assert done.stderr == f"{fifo}:1:1: is a FIFO, not a regular file\n"


def test_a_device_as_the_config_is_refused_not_read(tmp_path: Path) -> None:
    done = run_measured(pmemd_argv("plan", "--root", SERVER, "--config", "/dev/zero"),
                        timeout=20)
    assert done.returncode == 3
    assert done.stderr == "/dev/zero:1:1: is a character device, not a regular file\n"
    assert done.max_rss_kib < RSS_BOUND_KIB


def test_a_config_over_the_size_limit_says_the_limit(tmp_path: Path) -> None:
    config = tmp_path / "pmemd.yaml"
    config.write_bytes(b"version: 1\n" + b"#" * (5 << 20) + b"\n")
    done = run_measured(pmemd_argv("validate", "--root", SERVER, "--config", str(config)))
    assert done.returncode == 3
    assert done.stderr == (f"{config}:1:1: larger than 1 MiB (1048576 bytes), the most pmemd "
                           f"reads: {config.stat().st_size} bytes\n")
    assert done.max_rss_kib < RSS_BOUND_KIB


def test_the_config_under_the_root_as_a_fifo(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.mkfifo(root / "etc" / "pmemd.yaml")
    done = run_measured(pmemd_argv("validate", "--root", str(root)), timeout=20)
    assert done.returncode == 3
    assert done.stderr == f"{root}/etc/pmemd.yaml:1:1: is a FIFO, not a regular file\n"


# --- tracebacks that were: each a clear error, with its place and exit status ------------

TRACEBACKS = {
    # name: (config bytes, exit status, what stderr starts with after "CONFIG:")
    "superscript version": ("version: ¹\n".encode(), 3,
                            "1:10: version: expected the number 1, got '¹'"),
    "5000-digit version": (b"version: " + b"1" * 5000 + b"\n", 3,
                           "1:10: version: unsupported version '1111"),
    "NUL byte": (b"version: 1\nboot:\n  reboot: ne\x00ver\n", 3,
                 "3:13: character U+0000 is not allowed"),
    "not UTF-8": (b"version: 1\nregions:\n  - name: caf\xe9\n", 3,
                  "3:14: not UTF-8: byte 0xe9 cannot be decoded"),
    "fullwidth digit": ("version: 1\nregions:\n  - {name: a, size: ４G}\n".encode(), 3,
                        "3:21: regions[0].size: '４G' is not a size"),
}


@pytest.mark.parametrize("case", sorted(TRACEBACKS))
def test_bad_bytes_are_located_errors(case: str, tmp_path: Path) -> None:
    data, status, expected = TRACEBACKS[case]
    config = tmp_path / "pmemd.yaml"
    config.write_bytes(data)
    done = run_measured(pmemd_argv("validate", "--root", SERVER, "--config", str(config)))
    assert done.returncode == status, done.stderr
    assert done.stderr.startswith(f"{config}:{expected}"), done.stderr
    assert "Traceback" not in done.stderr


def test_a_symlink_loop_at_the_config_path(tmp_path: Path) -> None:
    config = tmp_path / "pmemd.yaml"
    config.symlink_to("loop.yaml")
    (tmp_path / "loop.yaml").symlink_to("pmemd.yaml")
    done = run_measured(pmemd_argv("validate", "--root", SERVER, "--config", str(config)))
    assert (done.returncode, done.stderr) == (3, f"{config}:1:1: is a loop of symbolic links\n")


@pytest.mark.parametrize("command", ["validate", "plan", "memmap", "reconcile"])
@pytest.mark.parametrize("root", ["/etc/hostname", "/nonexistent-pmemd-root"])
def test_a_root_that_is_no_directory_is_a_usage_error(command: str, root: str) -> None:
    done = run_measured(pmemd_argv(command, "--root", root, "--dry-run")
                        if command == "reconcile" else pmemd_argv(command, "--root", root))
    assert done.returncode == 2, done.stderr
    assert done.stderr.endswith(f"argument --root: not a directory: '{root}'\n")


def test_memory_left_just_under_the_minimum_does_not_read_as_the_minimum(
        tmp_path: Path) -> None:
    """server-16g has 14.9995 GiB usable: 13 GiB of regions leave 1.9995 GiB, which was
    said as "leaving 2 GiB to the system; ... asks for at least 2 GiB"."""
    config = write(tmp_path / "pmemd.yaml", "version: 1\nmemory: {min-system-ram: 2G}\n"
                   "regions:\n  - {name: a, size: 12G, offset: 4G}\n"
                   "  - {name: b, size: 1G, offset: 1G}\n")
    done = run_measured(pmemd_argv("validate", "--root", SERVER, "--config", str(config)))
    assert done.returncode == 3
    assert ("leaving 2146958336 bytes to the system; memory.min-system-ram asks for at least "
            "2147483648 bytes") in done.stderr


# --- nothing written -----------------------------------------------------------------------


def _tree(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path under ``root``: mode, modification time and content (for files)."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        found[str(path.relative_to(root))] = (info.st_mode, info.st_mtime_ns, data)
    return found


HOSTILE_CONFIGS = {
    "billion laughs": "version: 1\na: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n",
    "NUL": "version: 1\nboot: {reboot: \x00}\n",
    "10,000 regions": "version: 1\nregions:\n" + "".join(
        f"- {{name: r{i}, size: 128M, offset: {i}G}}\n" for i in range(10_000)),
    "deep": "version: 1\nregions: " + "[" * 5_000 + "]" * 5_000 + "\n",
    "overlaps": "version: 1\nregions:\n" + "".join(
        f"- {{name: r{i}, size: 1G, offset: 4G}}\n" for i in range(1_000)),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_CONFIGS))
def test_hostile_configs_change_nothing_under_the_root(case: str, tmp_path: Path) -> None:
    """validate, plan and reconcile on a hostile /etc/pmemd.yaml: located errors, exit 3, and
    the machine tree as it was, but for the (empty) file of pmemd's change lock, which
    reconcile takes before it reads the config."""
    import shutil

    root = tmp_path / "root"
    shutil.copytree(SERVER, root, symlinks=True)
    (root / "etc").mkdir()
    (root / "etc/pmemd.yaml").write_text(HOSTILE_CONFIGS[case], encoding="utf-8")
    before = _tree(root)
    for command in (["validate"], ["plan", "--json"], ["reconcile"]):
        done = run_measured(pmemd_argv(*command, "--root", str(root)))
        assert done.returncode == 3, (command, done.stderr[-2000:])
        assert done.stderr.startswith(f"{root}/etc/pmemd.yaml:"), done.stderr[:500]
        assert "Traceback" not in done.stderr
        assert done.output_bytes < OUTPUT_BOUND and done.max_rss_kib < RSS_BOUND_KIB
    after = _tree(root)
    assert {path: after[path] for path in before} == before
    assert set(after) - set(before) <= {"run", "run/pmemd", "run/pmemd/lock"}
    assert after.get("run/pmemd/lock", (0, 0, b""))[2] == b""
