"""A mountpoint pmemd accepts makes units systemd loads: checked by the real
``systemd-analyze verify`` on what the generator writes, and by ``systemd-escape`` for the
unit names; what would break the boot (an ordering cycle through pmemd's own state, the
EFI system partition) or make no valid unit name is refused by ``pmemd validate``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmemd.core.config import parse_config
from pmemd.core.units import UNIT_NAME_MAX, unit_name
from pmemd.machine.root import STATE_DIR
from tests.golden.generated import make_root, run_generator, verify_units

# Ordinary and odd mountpoints pmemd accepts: each must make units systemd loads.
ACCEPTED = ["/pmem", "/mnt/pmem", "/srv/pmem", "/var/lib/pmem-data", "/var/lib/pmemdata",
            "/var/log/pmem", "/var/tmp/pmem", "/home/user/pmem", "/a b", "/with%percent",
            "/back\\slash", "/ünïcödé", "/.hidden", "/dash-and_under.score", "/effi",
            "/pmem/" + "d" * 200]
# systemd-analyze verify reads FILE:NAME as "FILE, loaded as NAME": a unit whose name has a
# ':' cannot be given to it by path, so that one is checked by its name only.
COLON = "/x:y"
# The longest mountpoint whose units systemd can name: pmemd-dax@<escaped>.service has
# exactly UNIT_NAME_MAX bytes.
LONGEST = "/" + "p" * (UNIT_NAME_MAX - len("pmemd-dax@.service"))


def _config(mountpoints: list[str]) -> str:
    lines = ["version: 1", "memory: {alignment: 2M}", "regions:"]
    for number, mountpoint in enumerate(mountpoints):
        quoted = mountpoint.replace("'", "''")
        lines += [f"  - name: r{number}", "    size: 16M", f"    offset: {4096 + 16 * number}M",
                  f"    filesystem: {{type: ext4, mountpoint: '{quoted}', on-boot: keep}}"]
    return "\n".join(lines) + "\n"


def _escape(paths: list[str], suffix: str) -> list[str]:
    done = subprocess.run(["systemd-escape", "--path", f"--suffix={suffix}", *paths],
                          capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.split()  # one line, names separated by spaces (escaped names have none)


def test_every_accepted_mountpoint_makes_units_systemd_loads(tmp_path: Path) -> None:
    mountpoints = [*ACCEPTED, LONGEST]
    text = _config(mountpoints)
    assert parse_config(text, "pmemd.yaml").problems == ()
    config = tmp_path / "pmemd.yaml"
    config.write_text(text, encoding="utf-8")
    root = make_root(tmp_path, "server-16g", config)
    run = run_generator(root)
    assert (run.returncode, run.log) == (0, "")
    names = sorted(name for name in run.trees[0] if name.endswith(".mount") and "/" not in name)
    assert names == sorted(_escape(mountpoints, "mount"))
    verified = verify_units(root)
    assert verified.returncode == 0, verified.output
    assert len(verified.units) == 3 * len(mountpoints)  # mount, makefs, dax per region


def test_unit_names_are_what_systemd_escape_makes() -> None:
    mountpoints = [*ACCEPTED, LONGEST, COLON]
    assert parse_config(_config(mountpoints), "pmemd.yaml").problems == ()
    assert [unit_name(m, ".mount") for m in mountpoints] == _escape(mountpoints, "mount")
    assert len(unit_name(LONGEST, ".service", "pmemd-dax@")) == UNIT_NAME_MAX


REFUSED = {
    "/var/lib/pmemd": "holds pmemd's state",
    "/var/lib/pmemd/data": "holds pmemd's state",
    "/var/lib": f"would hide pmemd's state ({STATE_DIR})",
    "/efi": "is at or under /efi",
    "/efi/pmem": "is at or under /efi",
    "/boot/efi": "is at or under /boot",
    LONGEST + "p": "too long for a unit name: pmemd-dax@",
    "/" + "x" * 300: "too long for a unit name",
    "/" + "ü" * 40: "too long for a unit name",  # 40 characters, 320 bytes escaped
    "/pmem ": "cannot be written in a unit file",
}


@pytest.mark.parametrize("mountpoint", sorted(REFUSED))
def test_mountpoints_that_break_the_boot_are_refused(mountpoint: str) -> None:
    (problem,) = parse_config(_config([mountpoint]), "pmemd.yaml").problems
    assert problem.key == "regions[0].filesystem.mountpoint"
    assert REFUSED[mountpoint] in problem.message, problem.message
    assert len(problem.message) < 400


def test_the_state_directory_refused_is_pmemds(tmp_path: Path) -> None:
    """What the check refuses is exactly what made the ordering cycle: without the check,
    the generator's units for /var/lib/pmemd and /var/lib fail systemd-analyze verify."""
    from pmemd.core.model import Filesystem, FsType, OnBoot, Region
    from pmemd.core.ranges import MemRange
    from pmemd.core.units import render_region_units
    from pmemd.machine.root import GENERATOR_DIRS, TARGET, Machine

    for number, mountpoint in enumerate([STATE_DIR, STATE_DIR.rsplit("/", 1)[0]]):
        root = tmp_path / f"root{number}"
        out = Machine(root).path(GENERATOR_DIRS[0])
        region = Region("a", 1 << 30, 12 << 30, Filesystem(FsType.EXT4, mountpoint,
                                                             on_boot=OnBoot.KEEP))
        for made in render_region_units(region, MemRange.sized(12 << 30, 1 << 30), TARGET):
            path = out / made.path
            path.parent.mkdir(parents=True, exist_ok=True)
            if made.link is not None:
                path.symlink_to(made.link)
            else:
                path.write_text(made.text)
        verified = verify_units(root)
        assert verified.returncode != 0 and "ordering cycle" in verified.output


def test_the_state_directory_is_pmemds() -> None:
    from pmemd.core import config

    assert config.STATE_DIR == STATE_DIR


paths = st.lists(st.text(st.characters(codec="utf-8", exclude_characters="/\0"), min_size=1,
                         max_size=80), min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))


@settings(max_examples=150, deadline=None)
@given(paths)
def test_an_accepted_mountpoint_always_makes_its_units(path: str) -> None:
    from pmemd.core.config import mountpoint_problem
    from pmemd.core.model import Filesystem, FsType, Region
    from pmemd.core.ranges import MemRange
    from pmemd.core.units import render_region_units
    from pmemd.machine.root import TARGET

    if mountpoint_problem(path) is not None:
        return
    region = Region("a", 1 << 30, 0, Filesystem(FsType.EXT4, path))
    made = render_region_units(region, MemRange.sized(0, 1 << 30), TARGET)  # no UnitError
    assert all(len(f.path.rsplit("/", 1)[-1]) <= UNIT_NAME_MAX for f in made)
    assert unit_name(path, ".mount") == _escape([path], "mount")[0]
