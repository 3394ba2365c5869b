"""A real Debian 12 root on a real (loop-mounted) ext4 partition, for the real update-grub
and kernel-install.

The root is built once with mmdebstrap and cached as a tarball under
``tests/boot/cache/`` (gitignored; rebuilt when missing, keyed by its package list).
Each session unpacks it onto a fresh partitioned disk image: ``grub-probe`` must see ``/``
as a partition of a block device, as on a real machine.

What ``chroot`` needs besides the root: a ``/dev`` (a tmpfs with only the nodes the tools
use, and the ``/dev/disk/by-uuid`` link udev would make, so update-grub writes
``root=UUID=``), ``/proc`` and ``/sys``. pmemd itself reads the machine's facts (the memory
map, ``/proc/cmdline``...) from files of an example machine bound over those paths, so the
tests do not depend on the host's memory.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(__file__).resolve().parent / "cache"
SUITE = "bookworm"
# update-grub (grub2-common) and grub-probe (grub-common), the i386-pc modules, systemd's
# kernel-install, udevadm (grub-probe asks it where a partition starts) and systemd-sysv
# (so 10_linux makes no extra "(systemd)" entries, as on an installed Debian); systemd-stub
# (systemd-boot-efi) and objcopy (binutils), which build unified kernel images.
PACKAGES = ("grub2-common", "grub-pc-bin", "systemd", "systemd-sysv", "udev",
            "systemd-boot-efi", "binutils")
KERNELS = ("6.1.0-26-amd64", "6.1.0-27-amd64")
MACHINE_ID = "4c3f0e7b2a9d4e51b1a3c6d8e9f01234"
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")


def run(argv: Sequence[str | Path], *, check: bool = True, timeout: float = 900,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False,
                          timeout=timeout, input=input,
                          env={**os.environ, "PATH": SYSTEM_PATH, "LC_ALL": "C.UTF-8"})
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} exited {done.returncode}\n"
                           f"{done.stdout}{done.stderr}")
    return done


def tarball() -> Path:
    """The cached root (built with mmdebstrap when missing: about a minute)."""
    key = hashlib.sha256(f"{SUITE} {' '.join(PACKAGES)}".encode()).hexdigest()[:12]
    path = CACHE / f"debian12-grub-{key}.tar"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.tar")
    run(["mmdebstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, partial])
    partial.replace(path)
    return path


@dataclass
class DebianRoot:
    root: Path
    disk: str  # /dev/loopN
    partition: str  # /dev/loopNp1
    uuid: str
    pristine: dict[str, bytes | None] = field(default_factory=dict)

    def chroot(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["chroot", self.root, "env", "-i", f"PATH={SYSTEM_PATH}", "LC_ALL=C.UTF-8",
                    *argv], check=check)

    def update_grub(self) -> None:
        """update-grub as the admin (or a kernel's postinst) runs it: in the environment
        pmemd runs it in too (the locale shapes grub.cfg's header)."""
        done = subprocess.run(["chroot", str(self.root), "/usr/sbin/update-grub"],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"update-grub failed: {done.stderr}")

    def file(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    def remember(self, *absolutes: str) -> None:
        """Keep these files' content so :meth:`reset` can put them back between tests."""
        for absolute in absolutes:
            path = self.file(absolute)
            self.pristine[absolute] = path.read_bytes() if path.exists() else None

    def reset(self) -> None:
        for absolute, content in self.pristine.items():
            path = self.file(absolute)
            if content is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        for directory in ("/var/lib/pmemd", "/run"):
            target = self.file(directory)
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_mount():
                        shutil.rmtree(child)
                    elif not child.is_dir():
                        child.unlink()
        for stale in self.file("/etc/default/grub.d").glob(".*"):
            stale.unlink()


def _make_dev(stack: ExitStack, root: DebianRoot) -> None:
    dev = root.file("/dev")
    run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m", "tmpfs", dev])
    stack.callback(run, ["umount", "-l", dev], check=False)
    for name in DEV_NODES:
        run(["cp", "-a", f"/dev/{name}", dev / name])
    for node in (root.disk, root.partition):
        run(["cp", "-a", node, dev / Path(node).name])
    links = dev / "disk" / "by-uuid"
    links.mkdir(parents=True)
    (links / root.uuid).symlink_to(f"../../{Path(root.partition).name}")


def bind_file(stack: ExitStack, source: Path, target: Path) -> None:
    """Show ``source`` at ``target`` (a file or directory of /proc or /sys in the root)."""
    run(["mount", "--bind", source, target])
    stack.callback(run, ["umount", "-l", target], check=False)


@contextmanager
def debian_root(workdir: Path, source: Path | None = None) -> Iterator[DebianRoot]:
    """The cached root (or the root tarball ``source``, which must hold grub2-common and
    grub-pc-bin too) on a fresh partitioned disk image, with /dev, /proc and /sys, a
    machine-id, two (empty) kernel images and the admin's /etc/default/grub."""
    source = source if source is not None else tarball()
    image = workdir / "disk.img"
    mountpoint = workdir / "root"
    mountpoint.mkdir()
    run(["truncate", "-s", "2G", image])
    run(["sfdisk", "--quiet", image], input="label: dos\nstart=2048, type=83, bootable\n")
    with ExitStack() as stack:
        disk = run(["losetup", "--find", "--show", "--partscan", image]).stdout.strip()
        stack.callback(run, ["losetup", "-d", disk], check=False)
        partition = f"{disk}p1"
        if not Path(partition).exists():
            run(["partx", "--add", disk])
        run(["mkfs.ext4", "-q", "-F", partition])
        uuid = run(["blkid", "-s", "UUID", "-o", "value", partition]).stdout.strip()
        run(["mount", partition, mountpoint])
        stack.callback(run, ["umount", "-R", "-l", mountpoint], check=False)
        run(["tar", "-C", mountpoint, "-xf", source])
        root = DebianRoot(mountpoint, disk, partition, uuid)
        _make_dev(stack, root)
        run(["mount", "-t", "proc", "proc", root.file("/proc")])
        stack.callback(run, ["umount", "-l", root.file("/proc")], check=False)
        run(["mount", "-t", "sysfs", "sysfs", root.file("/sys")])
        stack.callback(run, ["umount", "-l", root.file("/sys")], check=False)
        # What grub-pc's postinst does on an installed system: the stock /etc/default/grub.
        shutil.copy(root.file("/usr/share/grub/default/grub"), root.file("/etc/default/grub"))
        root.file("/etc/machine-id").write_text(MACHINE_ID + "\n")
        root.file("/boot/grub").mkdir(parents=True, exist_ok=True)
        for release in KERNELS:
            root.file(f"/boot/vmlinuz-{release}").write_bytes(b"")
            root.file(f"/boot/initrd.img-{release}").write_bytes(b"")
        root.file("/etc/fstab").write_text(f"UUID={uuid} / ext4 errors=remount-ro 0 1\n")
        yield root


FACT_FILES = ("/proc/cmdline", "/proc/iomem", "/proc/meminfo", "/proc/sys/kernel/osrelease",
              "/proc/sys/kernel/random/boot_id")
FACT_DIRS = ("/sys/firmware/memmap",)


def bind_facts(stack: ExitStack, root: DebianRoot, facts: Path) -> None:
    """Show an example machine's facts (a tree like examples/machines/*) in the root's
    /proc and /sys; edit the files under ``facts`` in place to change them."""
    for absolute in FACT_FILES + FACT_DIRS:
        source = facts / absolute.lstrip("/")
        if source.exists():
            bind_file(stack, source, root.file(absolute))
