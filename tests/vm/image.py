"""The end-to-end tests' Debian 12 disk image: built by ``image.sh``, cached by what it is made of.

The base image's cache key is a hash of ``image.sh``, ``packages`` and every file in
``guest/``: change any of them and the next run rebuilds. The UEFI image (GPT, an ESP with
systemd-boot, ``image.sh build-uefi``) is its own family, keyed the same way with
``packages-uefi``. An image with local .debs
installed (``dpkg -i`` in a chroot) is cached under a key that adds the .debs' contents.
Cached images are read-only; tests boot copy-on-write overlays of them (``qemu.py``).

By hand (as root)::

    python -m tests.vm.image                      # build or reuse the base image, print its path
    python -m tests.vm.image --deb pmemd_1.0_all.deb
    python -m tests.vm.image --uefi               # the UEFI image (systemd-boot)
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pmemd.errors import CommandError
from pmemd.machine.runner import Runner

HERE = Path(__file__).resolve().parent
# PMEMD_VM_CACHE: another cache directory (e.g. an empty one, to time a build from scratch)
CACHE = Path(os.environ.get("PMEMD_VM_CACHE") or HERE / "cache")
SCRIPT = HERE / "image.sh"
PACKAGES = HERE / "packages"
PACKAGES_UEFI = HERE / "packages-uefi"
GUEST = HERE / "guest"
BUILD_TIMEOUT = 1800.0
KEEP_DERIVED = 3  # images with .debs kept per base image (the newest)
HOST_TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "mformat": "mtools",  # the UEFI image's ESP
    "sfdisk": "fdisk",
    "losetup": "mount",
    "partx": "util-linux",
    "mkfs.ext4": "e2fsprogs",
    "qemu-img": "qemu-utils",
}


@dataclass(frozen=True)
class Family:
    """A kind of image: how image.sh builds it, its package list, its files' prefix."""

    prefix: str  # cached as PREFIX-KEY.raw, with .debs PREFIX-KEY-debs-KEY.raw
    command: str  # image.sh's build command
    packages: Path


BIOS = Family("debian12", "build", PACKAGES)
UEFI = Family("uefi-debian12", "build-uefi", PACKAGES_UEFI)


class ImageError(Exception):
    """The image cannot be built (missing tool, not root, build failure)."""


@dataclass(frozen=True)
class Image:
    path: Path
    key: str
    build_seconds: float | None  # None: it came from the cache


def _digest(parts: Iterator[bytes]) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(len(part).to_bytes(8, "big"))
        sha.update(part)
    return sha.hexdigest()


def base_key(sources: Path = HERE, family: Family = BIOS) -> str:
    """The base image's cache key: the build script, the package list and the guest
    files under ``sources`` (this directory)."""
    guest = sources / GUEST.name
    inputs = [sources / SCRIPT.name, sources / family.packages.name,
              *sorted(p for p in guest.rglob("*") if p.is_file())]

    def parts() -> Iterator[bytes]:
        for path in inputs:
            yield str(path.relative_to(sources)).encode()
            yield path.read_bytes()

    return _digest(parts())


def debs_key(base: str, debs: Sequence[Path]) -> str:
    def parts() -> Iterator[bytes]:
        yield base.encode()
        for deb in sorted(debs, key=lambda p: p.name):
            yield deb.name.encode()
            yield deb.read_bytes()

    return _digest(parts())


def missing_host_tools() -> list[str]:
    """What the image build needs on the host and cannot find, as "tool (package)"."""
    problems = [f"{tool} (Debian package {package})" for tool, package in HOST_TOOLS.items()
                if shutil.which(tool) is None]
    if os.geteuid() != 0:
        problems.append("root (loop devices, mounts and chroot)")
    return problems


def _require_host() -> None:
    missing = missing_host_tools()
    if missing:
        raise ImageError("cannot build the test image, missing: " + ", ".join(missing)
                         + " — .ci/debian-packages lists the packages; ./run tests installs them")


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One builder at a time per cache directory (parallel test runs wait for each other)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run_logged(argv: list[str], log: Path) -> None:
    """Run an image.sh step, keep its output in ``log``; a failure names the log."""
    try:
        result = Runner().run(argv, timeout=BUILD_TIMEOUT)
    except CommandError as err:
        log.write_text(err.output + "\n", encoding="utf-8")
        raise ImageError(f"{err}\n(log: {log})") from None
    log.write_text(result.output + "\n", encoding="utf-8")


def _publish(partial: Path, final: Path) -> None:
    partial.chmod(0o444)
    partial.replace(final)


def _prune(cache: Path, keep: set[Path], family: Family = BIOS) -> None:
    """Drop images of ``family`` (and their logs) built from inputs that no longer exist."""
    for stale in cache.glob(f"{family.prefix}-*.raw"):
        if stale not in keep:
            stale.unlink()
            stale.with_suffix(".log").unlink(missing_ok=True)


def ensure_base(cache: Path = CACHE, family: Family = BIOS) -> Image:
    """The base image: from the cache, or built now (about two minutes)."""
    key = base_key(family=family)
    path = cache / f"{family.prefix}-{key[:16]}.raw"
    with _locked(cache):
        if path.exists():
            return Image(path, key, None)
        _require_host()
        _prune(cache, {p for p in cache.glob(f"{family.prefix}-{key[:16]}*.raw")}, family)
        partial = path.with_suffix(".partial")
        started = time.monotonic()
        try:
            _run_logged([str(SCRIPT), family.command, str(partial)], path.with_suffix(".log"))
            _publish(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return Image(path, key, time.monotonic() - started)


def ensure_with_debs(debs: Sequence[Path], cache: Path = CACHE, family: Family = BIOS
                     ) -> Image:
    """The base image with ``debs`` installed by ``dpkg -i`` (their dependencies must
    already be in the image: the guest has no network)."""
    if not debs:
        return ensure_base(cache, family)
    for deb in debs:
        if not deb.is_file():
            raise ImageError(f"{deb}: no such .deb")
    base = ensure_base(cache, family)
    key = debs_key(base.key, debs)
    path = cache / f"{family.prefix}-{base.key[:16]}-debs-{key[:16]}.raw"
    with _locked(cache):
        if path.exists():
            return Image(path, key, None)
        _require_host()
        partial = path.with_suffix(".partial")
        started = time.monotonic()
        try:
            Runner().run(["cp", "--sparse=always", str(base.path), str(partial)])
            partial.chmod(0o644)
            _run_logged([str(SCRIPT), "install-debs", str(partial), *map(str, debs)],
                        path.with_suffix(".log"))
            _publish(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        derived = sorted(cache.glob(f"{family.prefix}-{base.key[:16]}-debs-*.raw"),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        _prune(cache, {base.path, path, *derived[:KEEP_DERIVED]}, family)
        return Image(path, key, time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.vm.image", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deb", type=Path, action="append", default=[],
                        help="install this .deb into the image (repeatable)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="cache directory")
    parser.add_argument("--uefi", action="store_true",
                        help="the UEFI image (GPT, ESP, systemd-boot) instead of the BIOS one")
    args = parser.parse_args(argv)
    try:
        image = ensure_with_debs(args.deb, args.cache, UEFI if args.uefi else BIOS)
    except ImageError as err:
        print(f"image: {err}", file=sys.stderr)
        return 1
    how = ("from the cache" if image.build_seconds is None
           else f"built in {image.build_seconds:.0f} s")
    print(f"{image.path} ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
