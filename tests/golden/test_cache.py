"""The generator's cache (pmemd.fastpath.generator_cache, written by pmemd.generator.cache):
for every golden case the replayed output and log are byte for byte the full generator's;
any change of the config's bytes, the firmware map or pmemd's code (in any of its rooms) is
a miss; a damaged cache is a miss, never a crash or a wrong unit; the generator never
writes the cache; the writer is atomic; reconcile keeps it up to date.

Whether a run was a hit is seen from outside: `python -X importtime` lists every module a
run imported, and a hit never imports PyYAML or the config model.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pmemd.fastpath.generator_cache import CACHE
from pmemd.generator.cache import CacheResult, refresh_generator_cache
from pmemd.machine.root import GENERATOR_DIRS, Machine
from tests.boot.conftest import KILL_AT_RENAME, machine_tree
from tests.golden.generated import GENERATOR, MACHINES, REPO, make_root, snapshot

GOLDEN = Path(__file__).resolve().parent
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "machine").is_file())
# What the full generator always imports (the root object even without a config).
FULL_PATH_ONLY = ("pmemd.machine.root", "yaml", "pmemd.core.config", "pmemd.core.model",
                  "pmemd.generator.generate", "pmemd.core.units")


@dataclass(frozen=True)
class Generated:
    returncode: int
    log: str
    normal: dict[str, str]
    imported: frozenset[str]

    @property
    def hit(self) -> bool:
        return not self.imported & set(FULL_PATH_ONLY)


def generate(root: Path, out: Path | None = None, pythonpath: Path = REPO) -> Generated:
    """Run the real generator (as systemd would, with --root) and read back its output."""
    dirs = [out / Path(d).name for d in GENERATOR_DIRS] if out is not None else [
        Machine(root).path(d) for d in GENERATOR_DIRS]
    for directory in dirs:
        shutil.rmtree(directory, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", str(GENERATOR), "--root", str(root), *map(str, dirs)],
        capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "PYTHONPATH": str(pythonpath), "SYSTEMD_IN_INITRD": "0"})
    log = "".join(f"{line}\n" for line in done.stderr.splitlines()
                  if not line.startswith("import time:"))
    return Generated(done.returncode, log, snapshot(dirs[0]), frozenset(imported(done)))


def case_root(case: str, base: Path) -> Path:
    config = GOLDEN / case / "pmemd.yaml"
    return make_root(base, (GOLDEN / case / "machine").read_text().strip(),
                     config if config.exists() else None)


def imported(done: subprocess.CompletedProcess[str]) -> set[str]:
    """The modules a run under ``python -X importtime`` imported."""
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
            if line.startswith("import time:")}


def write_cache(root: Path) -> None:
    done, _ = refresh_generator_cache(Machine(root))
    assert done in (CacheResult.WRITTEN, CacheResult.CURRENT)


def cache_file(root: Path) -> Path:
    return root / CACHE


def test_the_cache_path_is_the_machines() -> None:
    assert Machine(Path("/x")).generator_cache == Path("/x") / CACHE


@pytest.mark.parametrize("case", CASES)
def test_replayed_output_and_log_are_the_full_generators(case: str, tmp_path: Path) -> None:
    root = case_root(case, tmp_path)
    full = generate(root)
    assert not full.hit
    write_cache(root)
    cached = generate(root)
    assert cached.hit, sorted(cached.imported & set(FULL_PATH_ONLY))
    assert (cached.returncode, cached.log, cached.normal) == \
        (full.returncode, full.log, full.normal)
    expected = GOLDEN / case / "expected"
    assert cached.normal == snapshot(expected / "normal")
    assert cached.log == (expected / "log").read_text()


def test_a_duplicate_is_reported_by_the_replay_as_by_the_full_path(tmp_path: Path) -> None:
    root = case_root("one-xfs", tmp_path)
    normal = Machine(root).path(GENERATOR_DIRS[0])

    def run_over_a_leftover() -> tuple[int, str, dict[str, str]]:
        shutil.rmtree(normal, ignore_errors=True)
        normal.mkdir(parents=True)
        (normal / "pmem.mount").write_text("# someone else's\n")
        done = subprocess.run(
            [sys.executable, str(GENERATOR), "--root", str(root),
             *(str(Machine(root).path(d)) for d in GENERATOR_DIRS)],
            capture_output=True, text=True, check=False, timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO), "SYSTEMD_IN_INITRD": "0"})
        return done.returncode, done.stderr, snapshot(normal)

    full = run_over_a_leftover()
    write_cache(root)
    assert run_over_a_leftover() == full
    assert full[0] == 0 and "pmem.mount: already exists" in full[1]


# --- misses ---------------------------------------------------------------------------------


def test_any_change_of_the_config_bytes_is_a_miss(tmp_path: Path) -> None:
    root = case_root("one-xfs", tmp_path)
    write_cache(root)
    assert generate(root).hit
    config = Machine(root).config
    config.write_text(config.read_text() + "# a comment changes no unit, but the bytes\n")
    again = generate(root)
    assert not again.hit and again.normal == snapshot(GOLDEN / "one-xfs/expected/normal")
    config.write_text(config.read_text().replace("/pmem", "/pmem2"))
    moved = generate(root)
    assert not moved.hit and "pmem2.mount" in moved.normal
    config.unlink()
    gone = generate(root)
    assert not gone.hit and gone.normal == {}


def test_a_change_of_the_firmware_map_is_a_miss_when_a_region_is_placed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    machine = Machine(root)
    machine.config.parent.mkdir(parents=True)
    shutil.copyfile(GOLDEN / "pinned-and-auto/pmemd.yaml", machine.config)
    machine_name = (GOLDEN / "pinned-and-auto/machine").read_text().strip()
    shutil.copytree(MACHINES / machine_name / "sys", machine.path("/sys"))
    before = generate(root)
    write_cache(root)
    assert generate(root).hit
    # The highest usable range ends 1 GiB lower: the output changes.
    entries = sorted(machine.firmware_memmap.iterdir(), key=lambda p: int(
        (p / "end").read_text(), 16))
    usable = [e for e in entries if (e / "type").read_text().strip() == "System RAM"][-1]
    end = int((usable / "end").read_text(), 16)
    (usable / "end").write_text(f"0x{end - (1 << 30):x}\n")
    after = generate(root)
    assert not after.hit and (after.normal, after.log) != (before.normal, before.log)
    cache_file(root).unlink()
    assert (after.normal, after.log) == (generate(root).normal, generate(root).log)


def test_the_firmware_map_is_not_read_when_every_region_is_pinned(tmp_path: Path) -> None:
    """…so the key does not hold it, and a changed map keeps the cache."""
    root = case_root("one-xfs", tmp_path)
    write_cache(root)
    assert "firmware " not in cache_file(root).read_text()


def test_a_change_of_pmemds_code_is_a_miss(tmp_path: Path) -> None:
    """The cache written by one copy of pmemd, read by that copy: a hit; once one module
    of it is replaced (same size, new times), a miss."""
    code = tmp_path / "code"
    shutil.copytree(REPO / "pmemd", code / "pmemd",
                    ignore=shutil.ignore_patterns("__pycache__"))
    root = case_root("one-xfs", tmp_path)
    written = subprocess.run([sys.executable, "-m", "pmemd", "generator-cache", "--root",
                              str(root)], capture_output=True, text=True, check=False,
                             env={**os.environ, "PYTHONPATH": str(code)}, cwd=tmp_path)
    assert written.returncode == 0 and written.stdout.endswith(": written\n"), written.stderr
    assert generate(root, pythonpath=code).hit
    assert not generate(root).hit  # the repository's pmemd is other code
    units = code / "pmemd" / "core" / "units.py"  # in a subpackage: its rooms count too
    units.write_bytes(units.read_bytes())  # same bytes, a new modification time
    assert not generate(root, pythonpath=code).hit


def test_python_writing_bytecode_beside_the_code_is_no_change(tmp_path: Path) -> None:
    """A fresh checkout or install has no __pycache__ yet; Python creating it (which changes
    the package directory, not the code) must not turn every later run into a miss."""
    code = tmp_path / "code"
    shutil.copytree(REPO / "pmemd", code / "pmemd",
                    ignore=shutil.ignore_patterns("__pycache__"))
    root = case_root("one-xfs", tmp_path)
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}
    written = subprocess.run([sys.executable, "-m", "pmemd", "generator-cache", "--root",
                              str(root)], capture_output=True, text=True, check=False, env=env,
                             cwd=tmp_path)
    assert written.returncode == 0 and written.stdout.endswith(": written\n"), written.stderr
    assert not (code / "pmemd" / "__pycache__").exists()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(code / "pmemd")], check=True)
    assert (code / "pmemd" / "__pycache__").is_dir()
    assert (code / "pmemd" / "boot" / "backends" / "__pycache__").is_dir()
    assert generate(root, pythonpath=code).hit


# --- damage ---------------------------------------------------------------------------------


def _damaged(text: bytes) -> Iterator[tuple[str, bytes]]:
    yield "empty", b""
    yield "magic only", text.split(b"\n", 1)[0] + b"\n"
    for fraction in (0.1, 0.5, 0.9, 0.999):
        yield f"truncated at {fraction}", text[: int(len(text) * fraction)]
    yield "no final newline", text[:-1]
    file_line = text.index(b"\ndata file ") + 15
    flipped = bytearray(text)
    flipped[file_line] = ord("0") if flipped[file_line] != ord("0") else ord("1")
    yield "a unit's text changed", bytes(flipped)
    yield "binary", bytes(range(256)) * 4
    yield "not ASCII", text.replace(b"version", "versión".encode())


def test_a_damaged_cache_is_a_miss_never_a_crash_or_a_wrong_unit(tmp_path: Path) -> None:
    root = case_root("pinned-and-auto", tmp_path)
    full = generate(root)
    write_cache(root)
    good = cache_file(root).read_bytes()
    for what, text in _damaged(good):
        cache_file(root).write_bytes(text)
        run = generate(root)
        assert not run.hit, what
        assert (run.returncode, run.log, run.normal) == (full.returncode, full.log,
                                                         full.normal), what
    cache_file(root).unlink()
    cache_file(root).mkdir()  # not even a file
    run = generate(root)
    assert not run.hit and run.normal == full.normal


def test_a_cache_naming_a_file_outside_the_output_directory_is_a_miss(tmp_path: Path) -> None:
    """Even with a right checksum: the generator writes into its output directory only."""
    from pmemd.fastpath.generator_cache import render_cache

    root = case_root("one-xfs", tmp_path)
    write_cache(root)
    lines = cache_file(root).read_text().splitlines()[1:-1]
    key = [tuple(line.split(" ")[1:]) for line in lines if line.startswith("key ")]
    escape = tmp_path / "escaped"
    cache_file(root).write_text(render_cache(key, "/dev/null", [
        (f"../../../../../../../../..{escape}", "[Unit]\n", None)], []))
    run = generate(root)
    assert not run.hit and not escape.exists()
    assert run.normal == snapshot(GOLDEN / "one-xfs/expected/normal")


def test_a_stale_leftover_from_another_config_is_a_miss(tmp_path: Path) -> None:
    """/var not mounted yet at generator time: the root file system may hold an old cache
    under the mount point. Its key does not match today's config, so it is not used."""
    other = case_root("sixteen-regions", tmp_path / "other")
    write_cache(other)
    root = case_root("one-xfs", tmp_path)
    cache_file(root).parent.mkdir(parents=True)
    text = cache_file(other).read_text().replace(f"root {str(other).encode().hex()}",
                                                 f"root {str(root).encode().hex()}")
    cache_file(root).write_text(text)
    run = generate(root)
    assert not run.hit and run.normal == snapshot(GOLDEN / "one-xfs/expected/normal")


# --- who writes it --------------------------------------------------------------------------


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only even for root: a read-only bind mount of it over itself."""
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_the_generator_never_writes_the_cache(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("needs root for the read-only bind mount")
    root = case_root("pinned-and-auto", tmp_path)
    state = Machine(root).state_dir
    state.mkdir(parents=True)
    out = tmp_path / "out"
    with read_only(root):
        missing = generate(root, out)
        assert missing.returncode == 0 and missing.normal
    assert list(state.iterdir()) == []
    write_cache(root)
    config = Machine(root).config
    config.write_text(config.read_text() + "# changed\n")
    stale = cache_file(root).read_bytes()
    with read_only(root):
        run = generate(root, out)
        assert not run.hit and run.returncode == 0 and run.normal == missing.normal
    assert cache_file(root).read_bytes() == stale
    assert sorted(p.name for p in state.iterdir()) == ["generator-cache"]


def test_the_writer_is_atomic(tmp_path: Path) -> None:
    """Killed between the fsynced temporary file and the rename: the old cache, whole."""
    root = case_root("one-xfs", tmp_path)
    write_cache(root)
    old = cache_file(root).read_bytes()
    config = Machine(root).config
    config.write_text(config.read_text().replace("/pmem", "/pmem2"))
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AT_RENAME, str(cache_file(root)), "generator-cache",
         "--root", str(root)], cwd=REPO, capture_output=True, text=True, check=False, timeout=120)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert cache_file(root).read_bytes() == old
    run = generate(root)
    assert not run.hit and "pmem2.mount" in run.normal
    write_cache(root)
    assert generate(root).hit


def test_unchanged_inputs_leave_the_file_alone(tmp_path: Path) -> None:
    root = case_root("one-xfs", tmp_path)
    assert refresh_generator_cache(Machine(root))[0] is CacheResult.WRITTEN
    before = os.stat(cache_file(root))
    assert refresh_generator_cache(Machine(root))[0] is CacheResult.CURRENT
    assert os.stat(cache_file(root)).st_ino == before.st_ino


def test_an_unreadable_config_removes_the_cache(tmp_path: Path) -> None:
    root = case_root("one-xfs", tmp_path)
    write_cache(root)
    config = Machine(root).config
    config.unlink()
    config.mkdir()  # reading it fails (not a missing config)
    assert refresh_generator_cache(Machine(root))[0] is CacheResult.REMOVED
    assert not cache_file(root).exists()


def test_reconcile_writes_it_and_the_converged_fast_path_writes_it_again(
        tmp_path: Path) -> None:
    """A systemd-boot machine already running with its region's option: the full
    reconcile writes the cache; once converged, the stamp's fast path (which does not load
    the generator's code) makes a missing cache again."""
    root = machine_tree(tmp_path / "root", "debian12-systemd-boot")
    Machine(root).config.write_text(
        "version: 1\nregions:\n  - name: data\n    size: 4G\n    offset: 12G\n"
        "    filesystem: {type: xfs, mountpoint: /pmem}\n")
    cmdline = root / "proc/cmdline"
    cmdline.write_text(cmdline.read_text().strip() + " memmap=4G!12G\n")

    def reconcile() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-X", "importtime", "-c",
                               "import sys; from pmemd.cli.entry import main;"
                               " sys.exit(main())", "reconcile", "--root", str(root)],
                              cwd=REPO, capture_output=True, text=True, check=False)

    first = reconcile()
    assert first.returncode == 0, first.stdout + first.stderr
    assert generate(root).hit
    assert "pmem.mount" in generate(root).normal
    reconcile()
    assert Machine(root).converged_stamp.exists()
    cache_file(root).unlink()
    replayed = reconcile()
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "pmemd.cli.pmemd" not in imported(replayed)  # the stamp's fast path answered
    assert "pmemd.generator.generate" in imported(replayed)  # and made the cache
    # a current cache is only checked
    assert "pmemd.generator.generate" not in imported(reconcile())
    assert cache_file(root).is_file()
    assert generate(root).hit
