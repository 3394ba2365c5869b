"""Removing the installed .deb from a Debian 12 root whose boot configuration pmemd changed:
the prerm's `pmemd reconcile --remove-all` takes pmemd's options out of the real GRUB
configuration (update-grub regenerates grub.cfg) and the admin is told to reboot. Both ways
pmemd changes it: a trial boot armed (the package's /etc/grub.d script wrote the trial entry
and grub-reboot selected it: both go) and the direct write (``boot.trial: never``).

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
  trial: {trial}
regions:
  - name: data
    size: 4G
    offset: 12G
"""
ADMIN = "console=ttyS0"


def linux_lines(root: DebianRoot) -> list[str]:
    return [line.strip() for line in root.file("/boot/grub/grub.cfg").read_text().splitlines()
            if line.strip().startswith("linux\t")]


# What the package's /etc/grub.d/42_pmemd_trial leaves in grub.cfg with no trial armed: its
# empty block (the script is a conffile, kept after "remove" until "purge").
EMPTY_TRIAL_BLOCK = ("\n### BEGIN /etc/grub.d/42_pmemd_trial ###\n"
                     "### END /etc/grub.d/42_pmemd_trial ###\n")


def grub_cfg(root: DebianRoot) -> str:
    """grub.cfg without the trial script's empty block."""
    return root.file("/boot/grub/grub.cfg").read_text().replace(EMPTY_TRIAL_BLOCK, "")


def grubenv(root: DebianRoot) -> str:
    return root.chroot("grub-editenv", "list").stdout


@pytest.mark.parametrize("trial", ["auto", "never"])
def test_removing_the_package_takes_pmemds_options_out_of_grub(built_deb: BuiltDeb,
                                                                tmp_path: Path,
                                                                trial: str) -> None:
    config = CONFIG.format(trial=trial)
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
        root.file("/etc/pmemd.yaml").write_text(config)

        applied = root.chroot("pmemd", "reconcile", check=False)
        assert applied.returncode == Exit.REBOOT_REQUIRED, applied.stdout + applied.stderr
        carrying = [line for line in linux_lines(root) if "memmap=4G!12G nokaslr" in line]
        if trial == "auto":  # one trial entry carries them, selected for the next boot only
            assert len(carrying) == 1 and "pmemd.trial=" in carrying[0], linux_lines(root)
            assert "$menuentry_id_option 'pmemd-trial'" in grub_cfg(root)
            assert "next_entry=pmemd-trial" in grubenv(root)
        else:
            assert carrying == linux_lines(root)

        removal = root.chroot("dpkg", "--remove", "pmemd")
        said = removal.stdout + removal.stderr
        assert "warning" not in said, said
        if trial == "never":
            assert "pmemd: removed the memmap= options pmemd had added" in said, said
            assert "reboot to give that memory back" in said
        else:  # only the trial carried them: this boot and the next are as before
            assert "removed the memmap= options" not in said, said
            assert not root.file("/run/reboot-required").exists()
        assert not root.file("/etc/default/grub.d/pmemd.cfg").exists()
        assert grub_cfg(root) == original
        assert all(ADMIN in line and "memmap=" not in line and "nokaslr" not in line
                   for line in linux_lines(root))
        assert root.file("/run/reboot-required").is_file() == (trial == "never")
        assert "next_entry" not in grubenv(root)
        assert root.file("/etc/pmemd.yaml").read_text() == config  # the admin's, kept

        root.chroot("dpkg", "--purge", "pmemd")
        assert not root.file("/var/lib/pmemd").exists()
        assert grub_cfg(root) == original
