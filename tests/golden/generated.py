"""Run the real ``systemd/pmemd-generator`` on a machine tree and read back what it wrote;
verify generated units with the real ``systemd-analyze verify``. Shared by the golden tests
and ``bench/generator.py``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pmemd.machine.root import GENERATOR_DIRS, PMEMD_BIN, Machine
from tests.conftest import install_host_systemd

REPO = Path(__file__).resolve().parent.parent.parent
GENERATOR = REPO / "systemd" / "pmemd-generator"
MACHINES = REPO / "examples" / "machines"


def make_root(base: Path, machine: str, config: Path | None) -> Path:
    """A machine root: the example machine's sysfs and, if given, ``config`` as the config."""
    root = base / "root"
    target = Machine(root)
    target.config.parent.mkdir(parents=True)
    if config is not None:
        shutil.copyfile(config, target.config)
    target.path("/sys").symlink_to(MACHINES / machine / "sys")
    return root


def generator_argv(root: Path, python: str = sys.executable) -> list[str]:
    """The generator as systemd runs it, with the three output directories under ``root``."""
    dirs = [str(Machine(root).path(d)) for d in GENERATOR_DIRS]
    return [python, str(GENERATOR), "--root", str(root), *dirs]


def generator_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "SYSTEMD_IN_INITRD": "0"}


@dataclass(frozen=True)
class Run:
    returncode: int
    log: str  # what it logged (stderr under --root)
    trees: tuple[dict[str, str], ...]  # normal, early, late: path -> content or "-> target"


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory``: its text, or ``-> target`` for a symlink."""
    found: dict[str, str] = {}
    if not directory.exists():
        return found
    for path in sorted(directory.rglob("*")):
        name = str(path.relative_to(directory))
        if path.is_symlink():
            found[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[name] = path.read_text(encoding="utf-8")
    return found


def run_generator(root: Path) -> Run:
    done = subprocess.run(generator_argv(root), capture_output=True, text=True,
                          env=generator_env(), check=False, timeout=60)
    trees = tuple(snapshot(Machine(root).path(d)) for d in GENERATOR_DIRS)
    return Run(done.returncode, done.stderr, trees)


@dataclass(frozen=True)
class Verified:
    returncode: int
    output: str
    units: tuple[str, ...]


def verify_units(root: Path) -> Verified:
    """``systemd-analyze verify`` on every unit in the normal generator directory, loaded as
    systemd loads them (that directory first on the unit path), with ``PMEMD_BIN`` present
    under ``root`` so ExecStart= can be checked."""
    machine = Machine(root)
    pmemd = machine.path(PMEMD_BIN)
    if not pmemd.exists():
        pmemd.parent.mkdir(parents=True, exist_ok=True)
        pmemd.write_text(f"#!/bin/sh\nexec {sys.executable} -m pmemd \"$@\"\n")
        pmemd.chmod(0o755)
    install_host_systemd(root)
    normal = GENERATOR_DIRS[0]
    written = machine.path(normal)
    units = tuple(sorted(f"{normal}/{p.name}" for p in written.iterdir()
                         if p.suffix in (".mount", ".service") and p.is_file())
                  ) if written.is_dir() else ()
    if not units:
        return Verified(0, "", ())
    done = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", "--man=no", *units],
        capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{normal}:", "SYSTEMD_LOG_LEVEL": "notice"})
    return Verified(done.returncode, (done.stdout + done.stderr).strip(), units)


def write_tree(directory: Path, tree: dict[str, str]) -> None:
    """``tree`` (as :func:`snapshot` returns it) written to ``directory``, replacing it."""
    shutil.rmtree(directory, ignore_errors=True)
    for name, content in tree.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content.startswith("-> "):
            path.symlink_to(content.removeprefix("-> "))
        else:
            path.write_text(content, encoding="utf-8")
