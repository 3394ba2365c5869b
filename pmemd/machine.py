"""The one place that knows where things live: every system path, mapped under a root.

Entry points take ``--root DIR`` (default ``/``); tests point it at a fake machine tree.
Paths that end up *inside* generated files (unit ``What=``, udev symlinks) are absolute
on the target system and are also defined here, as plain strings.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from pmemd.errors import MachineError

# Absolute paths as seen by the running system (for generated files and messages).
CONFIG_PATH = "/etc/pmemd.yaml"
STATE_DIR = "/var/lib/pmemd"
RUNTIME_DIR = "/run/pmemd"
DEV_DIR = "/dev"
PMEM_LINK_DIR = "/dev/disk/by-pmem-address"
SYSTEMD_SYSTEM_DIR = "/usr/lib/systemd/system"


@dataclass(frozen=True)
class Machine:
    """A machine's file tree, rooted at ``root`` (``/`` for the real one)."""

    root: Path = Path("/")

    def path(self, absolute: str) -> Path:
        """``absolute`` (e.g. ``/etc/pmemd.yaml``) under this machine's root."""
        if not absolute.startswith("/"):
            raise ValueError(f"not an absolute path: {absolute!r}")
        return self.root / absolute.lstrip("/")

    def display(self, absolute: str) -> str:
        """How to name a path in messages: as-is on the real root, else the rooted path."""
        return absolute if self.root == Path("/") else str(self.path(absolute))

    # --- what pmemd reads -------------------------------------------------------------

    @property
    def config(self) -> Path:
        return self.path(CONFIG_PATH)

    @property
    def firmware_memmap(self) -> Path:
        return self.path("/sys/firmware/memmap")

    @property
    def iomem(self) -> Path:
        return self.path("/proc/iomem")

    @property
    def cmdline(self) -> Path:
        return self.path("/proc/cmdline")

    @property
    def meminfo(self) -> Path:
        return self.path("/proc/meminfo")

    @property
    def osrelease(self) -> Path:
        return self.path("/proc/sys/kernel/osrelease")

    @property
    def boot(self) -> Path:
        return self.path("/boot")

    @property
    def sys_block(self) -> Path:
        return self.path("/sys/block")

    @property
    def sys_nd_devices(self) -> Path:
        return self.path("/sys/bus/nd/devices")

    @property
    def mountinfo(self) -> Path:
        return self.path("/proc/self/mountinfo")

    @property
    def dev(self) -> Path:
        return self.path(DEV_DIR)

    # --- what pmemd writes ------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.path(STATE_DIR)

    @property
    def runtime_dir(self) -> Path:
        return self.path(RUNTIME_DIR)

    @property
    def reboot_required(self) -> Path:
        return self.path("/run/reboot-required")

    @property
    def reboot_required_pkgs(self) -> Path:
        return self.path("/run/reboot-required.pkgs")

    # --- bootloader files -------------------------------------------------------------

    @property
    def etc_default_grub(self) -> Path:
        return self.path("/etc/default/grub")

    @property
    def etc_default_grub_d(self) -> Path:
        return self.path("/etc/default/grub.d")

    @property
    def loader_entries(self) -> Path:
        return self.path("/boot/loader/entries")

    @property
    def etc_kernel_cmdline(self) -> Path:
        return self.path("/etc/kernel/cmdline")

    @property
    def os_release(self) -> Path:
        etc = self.path("/etc/os-release")
        return etc if etc.exists() else self.path("/usr/lib/os-release")

    def read_text(self, path: Path, *, missing_ok: bool = True) -> str | None:
        """A file's text; ``None`` when it does not exist (and ``missing_ok``)."""
        try:
            return path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            if missing_ok:
                return None
            raise MachineError(f"{path}: no such file") from None
        except PermissionError:
            raise MachineError(f"{path}: permission denied (run as root)") from None
        except OSError as err:
            if err.errno == errno.EISDIR:
                raise MachineError(f"{path}: is a directory") from None
            raise MachineError(f"{path}: {err.strerror}") from None
