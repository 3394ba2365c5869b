"""pmemd-generator at boot on a config that is not a file it may read: it logs why and
writes nothing, exits 0, and never waits (a FIFO at /etc/pmemd.yaml used to hang the boot)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pmemd.machine.root import Machine
from tests.conftest import run_pmemd
from tests.golden.generated import make_root, run_generator


def _root(tmp_path: Path) -> Path:
    return make_root(tmp_path, "server-16g", None)


def test_a_fifo_as_the_config(tmp_path: Path) -> None:
    root = _root(tmp_path)
    os.mkfifo(Machine(root).config)
    run = run_generator(root)
    assert run.returncode == 0
    assert run.log == ("pmemd-generator: /etc/pmemd.yaml: is a FIFO, not a regular file, "
                       "ignoring\n")
    assert run.trees == ({}, {}, {})


@pytest.mark.parametrize(("target", "why"), [
    ("/dev/zero", "is a character device, not a regular file"),
    ("pmemd.yaml", "is a loop of symbolic links"),
])
def test_a_config_that_is_no_file(tmp_path: Path, target: str, why: str) -> None:
    root = _root(tmp_path)
    Machine(root).config.symlink_to(target)
    run = run_generator(root)
    assert run.returncode == 0
    assert run.log == f"pmemd-generator: /etc/pmemd.yaml: {why}, ignoring\n"
    assert run.trees == ({}, {}, {})


def test_a_config_over_the_size_limit(tmp_path: Path) -> None:
    root = _root(tmp_path)
    Machine(root).config.write_bytes(b"version: 1\n" + b"#" * (3 << 20) + b"\n")
    run = run_generator(root)
    assert run.returncode == 0
    assert run.log.startswith("pmemd-generator: /etc/pmemd.yaml: larger than 1 MiB (1048576 "
                              "bytes), the most pmemd reads")
    assert run.trees == ({}, {}, {})


def test_a_fifo_as_the_config_with_a_generator_cache_in_place(tmp_path: Path) -> None:
    """The warm path reads the config to check the cache's key: it must not open the FIFO
    for reading (that blocks until a writer comes — at boot, never)."""
    root = _root(tmp_path)
    config = Machine(root).config
    config.write_text("version: 1\nregions:\n  - name: data\n    size: 1G\n    offset: 12G\n")
    cached = run_pmemd("generator-cache", "--root", str(root))
    assert cached.returncode == 0, cached.stderr
    assert Machine(root).generator_cache.exists()
    config.unlink()
    os.mkfifo(config)
    run = run_generator(root)  # (times out after 60 s if it blocks)
    assert run.returncode == 0
    assert run.log == ("pmemd-generator: /etc/pmemd.yaml: is a FIFO, not a regular file, "
                       "ignoring\n")
    assert run.trees == ({}, {}, {})
