"""Regenerate the Debian fixtures under tests/fixtures/bootloader/ with the real tools:
``python -m tests.boot.capture`` (as root; builds the cached Debian root if needed).

* debian12/: the stock /etc/default/grub and what update-grub makes of it;
* debian12-memmap/: what ``pmemd reconcile`` and the real update-grub make of it for
  ``memmap=4G!12G`` (pmemd's drop-in, the regenerated grub.cfg, pmemd's state);
* debian12-systemd-boot/: systemd-boot entries written by the real kernel-install from
  /etc/kernel/cmdline, with the ESP mounted at /boot/efi.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from tests.boot.debianroot import (
    KERNELS,
    DebianRoot,
    bind_facts,
    debian_root,
    run,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "bootloader"
MACHINES = REPO / "examples" / "machines"
# bootctl install (systemd 252) writes this loader.conf.
LOADER_CONF = "#timeout 3\n#console-mode keep\n"
CONFIG = """version: 1
boot:
  bootloader: auto
regions:
  - name: data
    size: 4G
    offset: 12G
"""


def copy_out(root: DebianRoot, target: Path, *absolutes: str) -> None:
    if target.exists():
        shutil.rmtree(target)
    for absolute in absolutes:
        source = root.file(absolute)
        destination = target / absolute.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(source.read_bytes())
        destination.chmod(source.stat().st_mode & 0o777)


def capture() -> None:
    with tempfile.TemporaryDirectory() as work, debian_root(Path(work)) as root, \
            ExitStack() as stack:
        root.chroot("update-grub")
        kernels = [f"/boot/{kind}-{release}" for release in KERNELS
                   for kind in ("vmlinuz", "initrd.img")]
        copy_out(root, FIXTURES / "debian12", "/etc/default/grub",
                 "/etc/default/grub.d/init-select.cfg", "/boot/grub/grub.cfg",
                 "/usr/sbin/update-grub", "/usr/lib/os-release", *kernels)

        bind_facts(stack, root, MACHINES / "server-16g-memmap")
        config = Path(work) / "pmemd.yaml"
        config.write_text(CONFIG)
        done = subprocess.run([sys.executable, "-m", "pmemd", "reconcile", "--root",
                               str(root.root), "--config", str(config)], cwd=REPO,
                              capture_output=True, text=True, check=False)
        print(done.stdout, done.stderr)
        copy_out(root, FIXTURES / "debian12-memmap", "/etc/default/grub.d/pmemd.cfg",
                 "/boot/grub/grub.cfg", "/var/lib/pmemd/state.json")

        esp = root.file("/boot/efi")
        esp.mkdir(exist_ok=True)
        run(["mount", "-t", "tmpfs", "tmpfs", esp])
        stack.callback(run, ["umount", "-l", esp], check=False)
        (esp / "loader" / "entries").mkdir(parents=True)
        (esp / "loader" / "loader.conf").write_text(LOADER_CONF)
        root.file("/etc/kernel").mkdir(exist_ok=True)
        root.file("/etc/kernel/install.conf").write_text("layout=bls\n")
        root.file("/etc/kernel/cmdline").write_text(f"root=UUID={root.uuid} ro quiet\n")
        for release in KERNELS:
            root.chroot("kernel-install", "add", release, f"/boot/vmlinuz-{release}",
                        f"/boot/initrd.img-{release}")
        entries = sorted(p.name for p in (esp / "loader" / "entries").iterdir())
        copy_out(root, FIXTURES / "debian12-systemd-boot", "/etc/kernel/cmdline",
                 "/etc/kernel/install.conf", "/etc/machine-id", "/boot/efi/loader/loader.conf",
                 *(f"/boot/efi/loader/entries/{name}" for name in entries))


if __name__ == "__main__":
    capture()
