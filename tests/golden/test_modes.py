"""The generator's units for regions in each namespace mode: a golden tree
(``modes/expected``) and ``systemd-analyze verify`` on it.

The config is built as :class:`~pmemd.core.model.Config` objects (the ``mode:`` keys of
``pmemd.yaml`` are parsed by :mod:`pmemd.core.config`, tested there); the generator's
rendering from a config is what runs at boot. Regenerate after an intended change:

    PMEMD_GOLDEN_UPDATE=1 .venv/bin/python -m pytest tests/golden/test_modes.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pmemd.core.model import (
    Config,
    Filesystem,
    FsType,
    NamespaceMode,
    OnBoot,
    PageMap,
    Region,
)
from pmemd.core.units import GeneratedFile
from pmemd.fastpath.generator_runtime import Log
from pmemd.generator.generate import generate_config
from pmemd.machine.root import GENERATOR_DIRS, Machine
from tests.golden.generated import snapshot, verify_units, write_tree

GOLDEN = Path(__file__).resolve().parent / "modes" / "expected"
UPDATE = os.environ.get("PMEMD_GOLDEN_UPDATE") == "1"
GiB = 1 << 30
MiB = 1 << 20

CONFIG = Config(regions=(
    Region("plain", 512 * MiB, 1 * GiB, Filesystem(FsType.XFS, "/pmem")),
    Region("keep", 512 * MiB, 2 * GiB, Filesystem(FsType.EXT4, "/keep", (),
                                                    OnBoot.KEEP), mode=NamespaceMode.FSDAX),
    Region("fast", 512 * MiB, 3 * GiB, Filesystem(FsType.XFS, "/fast"),
           mode=NamespaceMode.FSDAX, map=PageMap.DEV),
    Region("dd", 512 * MiB, 4 * GiB, mode=NamespaceMode.DEVDAX, map=PageMap.DEV),
    Region("ram", 512 * MiB, 5 * GiB, mode=NamespaceMode.SYSTEM_RAM, map=PageMap.DEV),
))


def write_files(directory: Path, files: tuple[GeneratedFile, ...]) -> None:
    for file in files:
        path = directory / file.path
        path.parent.mkdir(parents=True, exist_ok=True)
        if file.link is not None:
            path.symlink_to(file.link)
        else:
            path.write_text(file.text, encoding="utf-8")


@pytest.fixture
def generated(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "root"
    root.mkdir()
    log = Log(echo=False)
    out = generate_config(Machine(root), CONFIG, log)
    assert log.records == []
    normal = Machine(root).path(GENERATOR_DIRS[0])
    normal.mkdir(parents=True)
    write_files(normal, out.files)
    return root, snapshot(normal)


def test_the_units_of_each_mode_are_the_golden_tree(generated: tuple[Path, dict[str, str]]
                                                    ) -> None:
    _, tree = generated
    if UPDATE:
        write_tree(GOLDEN, tree)
    assert tree == snapshot(GOLDEN)


def test_systemd_analyze_verify_accepts_them(generated: tuple[Path, dict[str, str]]) -> None:
    root, _ = generated
    verified = verify_units(root)
    assert any("pmemd-mode@" in unit for unit in verified.units)
    assert verified.returncode == 0, verified.output


def lines(tree: dict[str, str], name: str) -> list[str]:
    return tree[name].splitlines()


def test_a_raw_region_keeps_todays_units_and_gets_no_mode_unit(
        generated: tuple[Path, dict[str, str]]) -> None:
    _, tree = generated
    assert "pmemd-mode@0x40000000.service" not in tree
    makefs = r"pmemd-makefs@dev-disk-by\x2dpmem\x2daddress-0x40000000.service"
    assert not any("pmemd-mode@" in line for line in lines(tree, makefs))


def test_make_filesystem_requires_the_mode_unit_and_waits_for_it(
        generated: tuple[Path, dict[str, str]]) -> None:
    """Converting the namespace replaces the raw disk; makefs (and after it fsck and the
    mount) start only after set-mode has waited for the disk behind the info block."""
    _, tree = generated
    for start in ("0x80000000", "0xc0000000"):
        mode = f"pmemd-mode@{start}.service"
        makefs = rf"pmemd-makefs@dev-disk-by\x2dpmem\x2daddress-{start}.service"
        assert f"Requires={mode}" in lines(tree, makefs)
        assert f"After={mode}" in lines(tree, makefs)
        assert f"Before={makefs} shutdown.target" in lines(tree, mode)


@pytest.mark.parametrize(("start", "region"), [("0x100000000", "dd"), ("0x140000000", "ram")])
def test_devdax_and_system_ram_have_only_their_mode_unit_wanted_by_local_fs(
        generated: tuple[Path, dict[str, str]], start: str, region: str) -> None:
    _, tree = generated
    mode = f"pmemd-mode@{start}.service"
    assert f"ExecStart=/usr/bin/pmemd set-mode {region}" in lines(tree, mode)
    assert tree[f"local-fs.target.wants/{mode}"] == f"-> ../{mode}"
    assert "DefaultDependencies=no" in lines(tree, mode)
    assert not any(start in name for name in tree if name != mode and ".wants/" not in name
                   and not name.startswith("pmemd-trial"))


def test_the_trial_is_judged_after_every_mode_unit(generated: tuple[Path, dict[str, str]]
                                                   ) -> None:
    _, tree = generated
    trial = lines(tree, "pmemd-trial.service.d/50-pmemd-regions.conf")
    for start in ("0x80000000", "0xc0000000", "0x100000000", "0x140000000"):
        assert f"After=pmemd-mode@{start}.service" in trial
