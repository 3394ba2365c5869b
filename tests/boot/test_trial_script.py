"""/etc/grub.d/42_pmemd_trial on Ubuntu's entries: Ubuntu's 10_linux puts ``recordfail``
in every entry, and after a boot that did not finish GRUB then waits at the menu
(GRUB_RECORDFAIL_TIMEOUT; -1 waits for ever): the trial entry must not record it, or a
failed trial would leave a headless machine waiting. The script runs as grub-mkconfig runs
it, in a mount namespace whose /etc/default holds the test's defaults, beside a 10_linux
that writes an entry as Ubuntu 24.04's does (Debian's own is tested in test_trial_grub.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pmemd.boot.backends.update_grub import TRIAL_ID, render_dropin
from tests.conftest import REPO

SCRIPT = REPO / "etc/grub.d/42_pmemd_trial"
# As Ubuntu's 10_linux writes its first entry (grub2 2.12, noble); it reads the same
# variables as Debian's.
UBUNTU_10_LINUX = r"""#!/bin/sh
cat <<END
menuentry 'Ubuntu' --class ubuntu --class os \$menuentry_id_option 'gnulinux-simple-5f1c' {
	recordfail
	load_video
	gfxmode \$linux_gfx_mode
	insmod gzio
	insmod part_gpt
	insmod ext2
	search --no-floppy --fs-uuid --set=root 5f1c
	linux	/boot/vmlinuz-6.8.0-45 root=UUID=5f1c ro $GRUB_CMDLINE_LINUX $GRUB_CMDLINE_LINUX_DEFAULT
	initrd	/boot/initrd.img-6.8.0-45-generic
}
menuentry 'Ubuntu, with Linux 6.8.0-44' --class ubuntu \$menuentry_id_option 'gnulinux-6.8.0-44' {
	recordfail
	linux	/boot/vmlinuz-6.8.0-44-generic root=UUID=5f1c ro $GRUB_CMDLINE_LINUX
}
END
"""


def run_script(tmp_path: Path, dropin: str | None) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("needs root and unshare (util-linux): a mount namespace for /etc/default")
    defaults = tmp_path / "default"
    (defaults / "grub.d").mkdir(parents=True)
    (defaults / "grub").write_text('GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\n'
                                   'GRUB_CMDLINE_LINUX="console=ttyS0"\n')
    if dropin is not None:
        (defaults / "grub.d" / "pmemd.cfg").write_text(dropin)
    scripts = tmp_path / "grub.d"
    scripts.mkdir()
    linux = scripts / "10_linux"
    linux.write_text(UBUNTU_10_LINUX)
    linux.chmod(0o755)
    shutil.copy(SCRIPT, scripts / SCRIPT.name)
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c",
         'mount --bind "$1" /etc/default && exec "$2"', "sh", str(defaults),
         str(scripts / SCRIPT.name)],
        capture_output=True, text=True, timeout=60, check=False)


def test_the_trial_entry_does_not_record_a_failure_on_ubuntu(tmp_path: Path) -> None:
    done = run_script(tmp_path, render_dropin(("memmap=4G!12G",),
                                              ("memmap=2G!12G", "pmemd.trial=feed", "panic=10")))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("menuentry 'pmemd trial boot: Ubuntu'")
    assert f"$menuentry_id_option '{TRIAL_ID}'" in lines[0]
    assert not any(line.strip() == "recordfail" for line in lines), done.stdout
    linux = next(line for line in lines if line.strip().startswith("linux"))
    assert linux.split()[3:] == ["ro", "console=ttyS0", "memmap=2G!12G", "pmemd.trial=feed",
                                 "panic=10", "quiet", "splash"], linux
    assert lines[-1] == "}" and sum(line.startswith("menuentry") for line in lines) == 1
    assert "load_video" in done.stdout  # every other line of the entry as Ubuntu wrote it


def test_without_a_trial_it_writes_nothing(tmp_path: Path) -> None:
    done = run_script(tmp_path, render_dropin(("memmap=4G!12G",)))
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
