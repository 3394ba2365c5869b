"""Removing the installed .deb from a Debian 12 root whose boot configuration pmemd changed:
the prerm's `pmemd reconcile --remove-all` takes pmemd's options out of the real GRUB
configuration (update-grub regenerates grub.cfg) and the admin is told to reboot.

The root is the packaging tests' cached root (the .deb's dependencies and Debian's GRUB
tools) on a loop-mounted partition, as tests/boot does it: update-grub needs `/` to
be a partition of a block device. The example 16 GiB machine's facts are bound over /proc
and /sys, so pmemd plans the same way on any host.
"""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest

from pmemd.cli.exits import Exit
from tests.boot.debianroot import DebianRoot, bind_facts, debian_root
from tests.conftest import MACHINES
from tests.packaging.conftest import BuiltDeb, base_root_tarball

pytestmark = pytest.mark.packaging

CONFIG = """version: 1
boot:
  kaslr: disable
regions:
  - name: data
    size: 4G
    offset: 12G
"""
ADMIN = "console=ttyS0"


def linux_lines(root: DebianRoot) -> list[str]:
    return [line.strip() for line in root.file("/boot/grub/grub.cfg").read_text().splitlines()
            if line.strip().startswith("linux\t")]


def test_removing_the_package_takes_pmemds_options_out_of_grub(built_deb: BuiltDeb,
                                                                tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the Debian root needs root (loop devices, mounts, chroot)")
    facts = tmp_path / "facts"
    shutil.copytree(MACHINES / "server-16g", facts)
    with debian_root(tmp_path, base_root_tarball(built_deb)) as root, ExitStack() as stack:
        bind_facts(stack, root, facts)
        grub = root.file("/etc/default/grub")
        grub.write_text(grub.read_text().replace('GRUB_CMDLINE_LINUX=""',
                                                 f'GRUB_CMDLINE_LINUX="{ADMIN}"'))
        # In the environment dpkg runs the prerm in: the locale shapes grub.cfg's header.
        root.chroot("update-grub")
        original = root.file("/boot/grub/grub.cfg").read_text()
        shutil.copy(built_deb.deb, root.file("/tmp") / built_deb.deb.name)
        root.chroot("dpkg", "--install", f"/tmp/{built_deb.deb.name}")
        root.file("/etc/pmemd.yaml").write_text(CONFIG)

        applied = root.chroot("pmemd", "reconcile", check=False)
        assert applied.returncode == Exit.REBOOT_REQUIRED, applied.stdout + applied.stderr
        assert all("memmap=4G!12G nokaslr" in line for line in linux_lines(root))

        removal = root.chroot("dpkg", "--remove", "pmemd")
        said = removal.stdout + removal.stderr
        assert "pmemd: removed the memmap= options pmemd had added" in said, said
        assert "reboot to give that memory back" in said
        assert "warning" not in said
        assert not root.file("/etc/default/grub.d/pmemd.cfg").exists()
        assert root.file("/boot/grub/grub.cfg").read_text() == original
        assert all(ADMIN in line and "memmap=" not in line and "nokaslr" not in line
                   for line in linux_lines(root))
        assert root.file("/run/reboot-required").is_file()
        assert root.file("/etc/pmemd.yaml").read_text() == CONFIG  # the admin's, kept

        root.chroot("dpkg", "--purge", "pmemd")
        assert not root.file("/var/lib/pmemd").exists()
        assert root.file("/boot/grub/grub.cfg").read_text() == original
