"""Fixtures for the packaging tests: the .deb and .rpm built from this tree, and throwaway
Debian 12 roots (mmdebstrap) with the .deb installed.

The base root (the .deb's dependencies, plus the programs whose search paths the tests ask)
is cached as a tarball under tests/packaging/cache/ (gitignored), keyed by its package list;
a clean clone builds it on first use (about a minute with a reachable mirror).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
CACHE = Path(__file__).resolve().parent / "cache"
SUITE = "bookworm"
# Besides the .deb's Depends and Recommends: the programs whose search paths the tests ask
# (systemd, udev, dbus), and man-db, so that `systemd-analyze verify` checks that every
# Documentation=man:... page a unit names is installed. Debian's GRUB tools (update-grub,
# grub-probe and the i386-pc modules), so that removing the package can be tested on a root
# whose boot configuration pmemd changed (test_removal.py). bash-completion and zsh, whose
# own loaders must find the shell completions where the package puts them. Cockpit's bridge
# (pmemd-cockpit's dependency), which must find the page where that package puts it.
ROOT_EXTRAS = ("bash-completion", "cockpit-bridge", "dbus", "grub-pc-bin", "grub2-common",
               "man-db", "systemd", "udev", "zsh")
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def run(argv: Sequence[str | Path], *, timeout: float = 600, check: bool = True,
        env: Mapping[str, str] | None = None, cwd: Path | None = None
        ) -> subprocess.CompletedProcess[str]:
    """Run a command; with ``check``, fail the test with its output when it fails."""
    done = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd, check=False)
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(str(a) for a in argv)} exited {done.returncode}\n"
                    f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
    return done


def host_env(**extra: str) -> dict[str, str]:
    """The environment for Debian's own tools: no venv or pyenv shims in front of them."""
    return {**os.environ, "PATH": SYSTEM_PATH, **extra}


def package_names(relation: str) -> list[str]:
    """``a (>= 1), b | c, d:any`` → ``['a', 'b', 'd']`` (the first of each alternative)."""
    names = []
    for item in relation.split(","):
        first = item.split("|")[0].strip()
        if first:
            names.append(re.split(r"[\s(:\[]", first, maxsplit=1)[0])
    return names


@dataclass(frozen=True)
class BuiltDeb:
    changes: Path
    deb: Path

    def field(self, name: str) -> str:
        return run(["dpkg-deb", "--field", self.deb, name]).stdout.strip()

    def files(self) -> list[str]:
        """Paths of the regular files and symlinks in the package (no directories)."""
        with tarfile.open(self.deb.with_suffix(".tar")) as tar:  # written by built_deb
            return sorted("/" + m.name.removeprefix("./") for m in tar if not m.isdir())


@pytest.fixture(scope="session")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of this tree (`packaging/export-tree`), taken once per session, from which
    both packages are built. Built from the working tree itself, minutes apart while other
    work goes on in it, the .deb and the .rpm could differ: a module added in between was in
    the RPM only (test_rpm_lists_the_same_files_as_the_deb failed on pmemd/entry.py)."""
    tree = tmp_path_factory.mktemp("source") / "pmemd"
    run([PACKAGING / "export-tree", tree])
    return tree


@pytest.fixture(scope="session")
def built_deb(tmp_path_factory: pytest.TempPathFactory, source_tree: Path) -> BuiltDeb:
    """`packaging/build-deb` (what `make deb` runs) on this tree, into a temporary dir."""
    out = tmp_path_factory.mktemp("deb")
    done = run([source_tree / "packaging" / "build-deb"], env=host_env(PMEMD_DEB_OUT=str(out)),
               timeout=1200)
    changes = Path(done.stdout.strip().splitlines()[-1])
    debs = sorted(out.glob("pmemd_*_all.deb"))
    assert changes.is_file() and len(debs) == 1, done.stdout
    for deb in out.glob("*.deb"):
        with deb.with_suffix(".tar").open("wb") as tar:
            subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=tar, check=True)
    return BuiltDeb(changes, debs[0])


@pytest.fixture(scope="session")
def built_cockpit_deb(built_deb: BuiltDeb) -> BuiltDeb:
    """pmemd-cockpit's .deb, built with pmemd's by the same dpkg-buildpackage."""
    [deb] = built_deb.deb.parent.glob("pmemd-cockpit_*_all.deb")
    return BuiltDeb(built_deb.changes, deb)


@pytest.fixture(scope="session")
def built_rpm(tmp_path_factory: pytest.TempPathFactory, source_tree: Path) -> Path:
    """`packaging/build-rpm` (what `make rpm` runs) on this tree, into a temporary dir."""
    out = tmp_path_factory.mktemp("rpm")
    done = run([source_tree / "packaging" / "build-rpm"], env=host_env(PMEMD_RPM_OUT=str(out)),
               timeout=1200)
    rpm = Path(done.stdout.strip().splitlines()[-1])
    assert rpm.is_file() and rpm.suffix == ".rpm", done.stdout
    return rpm


def base_root_tarball(deb: BuiltDeb) -> Path:
    """A Debian 12 root with the .deb's dependencies installed; cached, rebuilt when the
    package list changes (or the cache is missing, as in a clean clone)."""
    names = sorted({*package_names(deb.field("Depends")), *package_names(deb.field("Recommends")),
                    *ROOT_EXTRAS})
    key = hashlib.sha256("\n".join([SUITE, *names]).encode()).hexdigest()[:16]
    tarball = CACHE / f"{SUITE}-{key}.tar"
    if tarball.is_file():
        return tarball
    CACHE.mkdir(exist_ok=True)
    partial = tarball.with_name(f"{tarball.name}.{os.getpid()}.partial")  # runs may race
    run(["mmdebstrap", "--quiet", "--variant=apt", "--format=tar",
         f"--include={','.join(names)}", SUITE, partial], env=host_env(), timeout=1800)
    for stale in CACHE.glob(f"{SUITE}-*.tar"):
        stale.unlink(missing_ok=True)
    partial.rename(tarball)
    return tarball


@dataclass(frozen=True)
class Root:
    """A throwaway Debian root; commands run in it with chroot(8) and a clean environment."""

    path: Path

    def run(self, *argv: str, check: bool = True, timeout: float = 300
            ) -> subprocess.CompletedProcess[str]:
        return run(["chroot", self.path, "/usr/bin/env", "-i", f"PATH={SYSTEM_PATH}",
                    "LANG=C.UTF-8", *argv], check=check, timeout=timeout)

    def file(self, absolute: str) -> Path:
        return self.path / absolute.lstrip("/")

    def install(self, deb: Path) -> subprocess.CompletedProcess[str]:
        shutil.copy(deb, self.file("/tmp") / deb.name)
        return self.run("dpkg", "--install", f"/tmp/{deb.name}")


def make_root(deb: BuiltDeb, where: Path) -> Root:
    where.mkdir()
    run(["tar", "--extract", "--file", base_root_tarball(deb), "--directory", where])
    return Root(where)


@pytest.fixture(scope="module")
def installed_root(built_deb: BuiltDeb, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[Root]:
    """A fresh Debian 12 root with the .deb installed by dpkg, as apt would."""
    root = make_root(built_deb, tmp_path_factory.mktemp("installed") / "root")
    root.install(built_deb.deb)
    yield root
    shutil.rmtree(root.path)


@pytest.fixture
def fresh_root(built_deb: BuiltDeb, tmp_path: Path) -> Iterator[Root]:
    """A Debian 12 root with the .deb's dependencies but not the .deb."""
    root = make_root(built_deb, tmp_path / "root")
    yield root
    shutil.rmtree(root.path)
