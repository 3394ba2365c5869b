"""pmemd-generator never fails the boot and writes nowhere but below its output directory,
whatever it finds there and whatever the config and the machine say: a unit already there,
the output directory (or one of its subdirectories) a file, a subdirectory a symlink
leading elsewhere — each is logged ("…, ignoring"), the rest is written, the exit status
is 0. The real ``systemd/pmemd-generator``, by the full path and by the cache's replay;
then generated configs and machine trees (hypothesis), with the figure recorded."""

from __future__ import annotations

import os
import shutil
import string
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmemd.machine.root import GENERATOR_DIRS, Machine
from tests.golden.generated import (
    Run,
    generator_argv,
    generator_env,
    make_root,
    run_generator,
)
from tests.reliability import Figure

GOLDEN = Path(__file__).resolve().parent
ONE_XFS = GOLDEN / "one-xfs" / "pmemd.yaml"
NORMAL = GENERATOR_DIRS[0]


def one_xfs_root(base: Path) -> tuple[Path, Path]:
    root = make_root(base, "qemu-2g-pmem", ONE_XFS)
    return root, Machine(root).path(NORMAL)


def write_cache(root: Path) -> None:
    """The generator's cache for ``root``, as reconcile and the service write it: the next
    run replays it (the fast path) instead of computing."""
    done = subprocess.run([*generator_env_python(), "-m", "pmemd", "generator-cache",
                           "--root", str(root)], capture_output=True, text=True,
                          env=generator_env(), check=False, timeout=60)
    assert done.returncode == 0 and done.stdout.endswith(": written\n"), done.stderr


def generator_env_python() -> list[str]:
    return [generator_argv(Path("/"))[0]]


def both_paths(base: Path, prepare: Callable[[Path], None]) -> list[tuple[Run, Path]]:
    """The generator computing its output, then replaying its cache, each on a fresh root
    whose output directory ``prepare`` has set up."""
    runs = []
    for cached in (False, True):
        root, normal = one_xfs_root(base / ("cached" if cached else "full"))
        if cached:
            write_cache(root)
        prepare(normal)
        runs.append((run_generator(root), normal))
    return runs


def test_a_unit_already_there_is_logged_and_left_alone(tmp_path: Path) -> None:
    def prepare(normal: Path) -> None:
        normal.mkdir(parents=True)
        (normal / "pmem.mount").write_text("# someone else's\n")

    for run, normal in both_paths(tmp_path, prepare):
        assert run.returncode == 0, run.log
        assert f"{normal}/pmem.mount: already exists (a duplicate unit?), ignoring" in run.log
        assert (normal / "pmem.mount").read_text() == "# someone else's\n"
        assert "pmemd-dax@pmem.service" in run.trees[0]  # the rest is still written


def test_an_output_directory_that_is_a_file_is_logged(tmp_path: Path) -> None:
    def prepare(normal: Path) -> None:
        normal.parent.mkdir(parents=True)
        normal.write_text("not a directory\n")

    for run, normal in both_paths(tmp_path, prepare):
        assert run.returncode == 0, run.log
        assert f"{normal}: Not a directory, ignoring" in run.log or \
            f"{normal}/pmem.mount: Not a directory, ignoring" in run.log, run.log
        assert normal.read_text() == "not a directory\n"


def test_a_subdirectory_that_leads_elsewhere_is_not_followed(tmp_path: Path) -> None:
    """``local-fs.target.wants`` a symlink to a directory outside: the generator writes
    nothing there (it would, following the link), logs it and writes the rest."""
    outside = tmp_path / "outside"

    def prepare(normal: Path) -> None:
        elsewhere = outside / normal.parent.parent.parent.parent.name  # one per root
        elsewhere.mkdir(parents=True)
        normal.mkdir(parents=True)
        (normal / "local-fs.target.wants").symlink_to(elsewhere)

    for run, _ in both_paths(tmp_path, prepare):
        assert run.returncode == 0, run.log
        assert "local-fs.target.wants" in run.log and ", ignoring" in run.log, run.log
        assert "pmem.mount" in run.trees[0]
    assert [p for p in outside.rglob("*") if not p.is_dir()] == []


# --- generated configs and machine trees --------------------------------------------------

# Mostly values that make units (so that something stands in their way), some that do not.
NAMES = st.one_of(st.sampled_from(["data", "pmem", "fast-log", "a1"]),
                  st.text(string.ascii_lowercase + string.digits + "-_./", max_size=12))
SIZES = st.sampled_from(["512M", "1G", "256M", "4G", "0", "-1G", "3X",
                         "18446744073709551616", "0x40000000", "16E"])
OFFSETS = st.sampled_from([None, "1G", "1536M", "12G", "0", "0x1" + "0" * 30, "3X"])
MOUNTPOINTS = st.sampled_from(["/pmem", "/pmem", "/mnt/data", "/", "/boot", "/var/lib/pmemd",
                               "relative", "/a b", "/" + "x" * 300, "/pmem/../etc"])


GOOD = st.fixed_dictionaries({
    "name": st.just("pmem"),  # numbered below: good regions never collide
    "size": st.sampled_from(["512M", "1G"]),
    "offset": st.sampled_from(["pinned", "pinned", None]),
    "type": st.sampled_from(["xfs", "ext4"]),
    "mountpoint": st.sampled_from(["/pmem", "/mnt/pmem", "/srv/pmem"]),
    "on-boot": st.sampled_from(["recreate", "keep"]),
})
ODD = st.fixed_dictionaries({
    "name": NAMES, "size": SIZES, "offset": OFFSETS,
    "type": st.sampled_from(["xfs", "ext4", "btrfs", None]),
    "mountpoint": MOUNTPOINTS,
    "on-boot": st.sampled_from(["recreate", "keep", "never"]),
})


def render_region(fields: dict[str, str | None]) -> str:
    lines = [f"  - name: {fields['name']!r}", f"    size: {fields['size']}"]
    if fields["offset"] is not None:
        lines.append(f"    offset: {fields['offset']}")
    if fields["type"] is not None:
        lines += ["    filesystem:", f"      type: {fields['type']}",
                  f"      mountpoint: {fields['mountpoint']!r}",
                  f"      on-boot: {fields['on-boot']}"]
    return "\n".join(lines)


@st.composite
def configs(draw: st.DrawFn) -> bytes:
    """Mostly documents whose regions make units (good ones, with odd ones beside them);
    sometimes arbitrary bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    found = draw(st.lists(st.one_of(GOOD, GOOD, GOOD, ODD), min_size=1, max_size=3))
    for index, fields in enumerate(found):
        if fields["name"] == "pmem":  # a good one: its own name, place and mountpoint
            fields.update(name=f"pmem{index}", mountpoint=f"{fields['mountpoint']}{index}")
            if fields["offset"] == "pinned":
                fields["offset"] = f"{index + 1}G"
    version = draw(st.sampled_from(["1"] * 6 + ["2", "'1'", ""]))
    body = "\n".join(render_region(fields) for fields in found)
    return f"version: {version}\nregions:\n{body}\n".encode()


FIRMWARE_TYPES = st.sampled_from(["System RAM", "Reserved", "Persistent Memory (legacy)",
                                  "ACPI Tables", "", "\x00garbage"])
NUMBERS = st.sampled_from(["0x0", "0x100000", "0x40000000", "0xbfffffff", "0xffffffffffffffff",
                           "0x1" + "0" * 40, "zzz", "", "-0x100", "0x7fffffff"])


@st.composite
def firmware_maps(draw: st.DrawFn) -> list[tuple[str, str, str]] | None:
    if draw(st.integers(0, 4)) == 0:
        return None
    return draw(st.lists(st.tuples(NUMBERS, NUMBERS, FIRMWARE_TYPES), max_size=6))


OUTPUT_SETUPS = st.sampled_from(["absent", "empty", "file", "unit-there", "wants-link",
                                 "wants-file"])
CONFIG_KINDS = st.sampled_from(["file"] * 6 + ["missing", "directory", "loop"])


def build_machine(base: Path, config: bytes, kind: str,
                  firmware: list[tuple[str, str, str]] | None, output: str) -> Path:
    root = base / "root"
    machine = Machine(root)
    machine.config.parent.mkdir(parents=True)
    if kind == "file":
        machine.config.write_bytes(config)
    elif kind == "directory":
        machine.config.mkdir()
    elif kind == "loop":
        machine.config.symlink_to(machine.config.name)
    if firmware is not None:
        machine.firmware_memmap.mkdir(parents=True)
        for index, (start, end, kind_text) in enumerate(firmware):
            entry = machine.firmware_memmap / str(index)
            entry.mkdir()
            for name, value in (("start", start), ("end", end), ("type", kind_text)):
                (entry / name).write_text(value + "\n")
    normal = machine.path(NORMAL)
    if output != "absent":
        normal.parent.mkdir(parents=True)
    if output == "file":
        normal.write_text("x\n")
    elif output != "absent":
        normal.mkdir()
    if output == "unit-there":
        (normal / "pmem0.mount").write_text("x\n")
    elif output == "wants-link":
        (base / "elsewhere").mkdir()
        (normal / "local-fs.target.wants").symlink_to(base / "elsewhere")
    elif output == "wants-file":
        (normal / "local-fs.target.wants").write_text("x\n")
    return root


def files_outside(base: Path, root: Path) -> dict[str, bytes | str]:
    """Everything under ``base`` but the generator's output directories: each file's
    bytes, each symlink's target."""
    found: dict[str, bytes | str] = {
        str(p.relative_to(base)): os.readlink(p) if p.is_symlink() else p.read_bytes()
        for p in sorted(base.rglob("*")) if p.is_symlink() or p.is_file()}
    outputs = [str(Machine(root).path(d).relative_to(base)) for d in GENERATOR_DIRS]
    return {k: v for k, v in found.items()
            if not any(k == o or k.startswith(o + "/") for o in outputs)}


def blocked(output: str, clean: dict[str, str]) -> set[str]:
    """What of a clean run's output the ``output`` setup stands in the way of."""
    if output == "file":
        return set(clean)
    if output == "unit-there":
        return {"pmem0.mount"} & set(clean)
    if output in ("wants-link", "wants-file"):
        return {k for k in clean if k.startswith("local-fs.target.wants")}
    return set()


def check_one(config: bytes, kind: str, firmware: list[tuple[str, str, str]] | None,
              output: str) -> None:
    base = Path(tempfile.mkdtemp(prefix="pmemd-gen-"))
    try:
        clean = run_generator(build_machine(base / "clean", config, kind, firmware, "absent"))
        assert clean.returncode == 0 and "Traceback" not in clean.log, clean.log
        root = build_machine(base / "hostile", config, kind, firmware, output)
        before = files_outside(base / "hostile", root)
        run = run_generator(root)
        assert run.returncode == 0 and "Traceback" not in run.log, run.log
        assert files_outside(base / "hostile", root) == before  # nothing written elsewhere
        left_out = blocked(output, clean.trees[0])
        if left_out:
            assert ", ignoring" in run.log, run.log  # what it left out, it said
        for name, text in clean.trees[0].items():  # the rest is written as always
            if name not in left_out:
                assert run.trees[0].get(name) == text, (name, run.log)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_generator_exits_0_and_writes_only_its_output_on_anything(
        reliability: Callable[[Figure], None]) -> None:
    """Generated configs (odd values, invalid documents, arbitrary bytes), config files
    that are missing, directories or symlink loops, firmware maps with odd numbers and
    types, and output directories already holding a file, a unit, a symlink leading
    elsewhere: always exit 0, nothing written outside the output directories, every file a
    clean run writes written unless something stood in its way — and that said."""
    tried = []

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(config=configs(), kind=CONFIG_KINDS, firmware=firmware_maps(),
           output=OUTPUT_SETUPS)
    def one(config: bytes, kind: str, firmware: list[tuple[str, str, str]] | None,
            output: str) -> None:
        check_one(config, kind, firmware, output)
        tried.append(output)

    one()
    reliability(Figure("hostile input", "generator on generated configs and machine trees",
                       len(tried), "runs",
                       note="exit 0 every time, nothing written outside its output "
                            "directories"))


def test_a_config_with_thousands_of_problems_logs_a_bounded_number(tmp_path: Path) -> None:
    """A config with 1,000 bad regions (each a problem) must not flood the boot's journal:
    the first problems are logged in full, the rest counted in one line."""
    config = tmp_path / "pmemd.yaml"
    config.write_text("version: 1\nregions:\n"
                      + "".join(f"  - name: r{i}\n    size: nonsense\n" for i in range(1000)))
    run = run_generator(make_root(tmp_path, "qemu-2g-pmem", config))
    assert run.returncode == 0
    lines = run.log.splitlines()
    assert len(lines) <= 60, (len(lines), lines[:3], lines[-3:])
    assert any("more problems" in line and "pmemd validate" in line for line in lines), \
        lines[-3:]
