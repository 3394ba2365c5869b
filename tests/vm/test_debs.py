"""A local .deb goes into the guest the way pmemd's own package will: ``ensure_with_debs``
installs it with ``dpkg -i`` into a cached copy of the image, and the guest boots with it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.vm.image import Image, ensure_with_debs
from tests.vm.qemu import Guest

pytestmark = pytest.mark.vm

PACKAGE = "pmemd-vm-probe"
CONTENT = "installed by tests/vm/test_debs.py\n"


def build_probe_deb(directory: Path) -> Path:
    """A tiny real .deb. dpkg-deb stamps the build time into it, so every run installs it
    afresh (about 2 s: a sparse copy of the base image and ``dpkg -i`` in a chroot)."""
    root = directory / PACKAGE
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {PACKAGE}\nVersion: 1.0\nArchitecture: all\n"
        "Depends: python3-yaml\n"
        "Maintainer: pmemd tests <tests@pmemd.invalid>\n"
        "Description: probe for the end-to-end harness\n")
    (root / "usr" / "share" / PACKAGE).mkdir(parents=True)
    (root / "usr" / "share" / PACKAGE / "probe").write_text(CONTENT)
    deb = directory / f"{PACKAGE}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    return deb


def test_a_local_deb_is_installed_in_the_booted_guest(
        vm_image: Image, tmp_path: Path, boot_guest: Callable[..., Guest],
        vm_timing: Callable[[str, float], None]) -> None:
    image = ensure_with_debs([build_probe_deb(tmp_path)])
    assert image.path != vm_image.path
    assert image.build_seconds is not None
    vm_timing("image with a .deb (copy + dpkg -i)", image.build_seconds)
    guest = boot_guest(image.path)
    guest.wait_boot()
    step = guest.run(f"dpkg-query -W -f '${{Status}}\\n' {PACKAGE}\n"
                     f"cat /usr/share/{PACKAGE}/probe\n").check()
    assert step.stdout == "install ok installed\n" + CONTENT
    assert guest.poweroff() == 0
