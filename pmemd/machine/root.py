"""The root object: the one place that knows where things live, every system path mapped
under a root.

Entry points take ``--root DIR`` (default ``/``); tests point it at a fake machine tree.
Paths that end up *inside* generated files (unit ``What=``, udev symlinks) are absolute
on the target system and are also defined here, as plain strings (:data:`TARGET`).
No other module of pmemd spells a path under ``/proc``, ``/sys``, ``/etc``, ``/boot`` or
``/dev``.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from pmemd.core.units import TargetPaths
from pmemd.errors import MachineError

# Absolute paths as seen by the running system (for generated files and messages).
CONFIG_PATH = "/etc/pmemd.yaml"
STATE_DIR = "/var/lib/pmemd"
RUNTIME_DIR = "/run/pmemd"
DEV_DIR = "/dev"
BOOT_DIR = "/boot"
PMEM_LINK_DIR = "/dev/disk/by-pmem-address"
DAX_LINK_DIR = "/dev/dax/by-pmem-address"  # devdax char devices (systemd/60-pmemd.rules)
PMEMD_BIN = "/usr/bin/pmemd"  # what generated units run
KMSG_PATH = "/dev/kmsg"  # where a generator logs (it runs before the journal)
JOURNAL_SOCKET = "/run/systemd/journal/socket"  # journald's native protocol
MASK = Path("/dev/null")  # a link to it masks a unit or a kernel-install plugin
# The output directories systemd passes to generators (normal, early, late).
GENERATOR_DIRS = ("/run/systemd/generator", "/run/systemd/generator.early",
                  "/run/systemd/generator.late")
# Where a tool is looked for under the root (the order of a root shell's PATH).
PROGRAM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# Where kernel-install / systemd-boot keep $BOOT (loader/entries), in the order
# kernel-install probes them.
BOOT_ROOTS = ("/efi", "/boot", "/boot/efi")
GRUB_DROPIN = "/etc/default/grub.d/pmemd.cfg"  # pmemd's own file on Debian/Ubuntu
# pmemd's own file while a trial is armed where it edits /etc/default/grub (grub-mkconfig):
# only /etc/grub.d/42_pmemd_trial acts on it
GRUB_TRIAL_DROPIN = "/etc/default/grub.d/pmemd-trial.cfg"
GRUB_TRIAL_SCRIPT = "/etc/grub.d/42_pmemd_trial"  # writes the trial entry (the package's)
DRACUT_DIR = "/usr/lib/dracut"  # present where dracut builds the initramfs
# Where tracefs is mounted (the first one, where it can be mounted when it is not), then
# its older place under debugfs.
TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


# What generated units name on the running system.
TARGET = TargetPaths(config=CONFIG_PATH, program=PMEMD_BIN, state_dir=STATE_DIR,
                     links=PMEM_LINK_DIR)


@dataclass(frozen=True)
class Machine:
    """A machine's file tree, rooted at ``root`` (``/`` for the real one)."""

    root: Path = Path("/")

    def path(self, absolute: str) -> Path:
        """``absolute`` (e.g. ``/etc/pmemd.yaml``) under this machine's root; as text, it is
        how messages name the file (the absolute path itself on the real root)."""
        if not absolute.startswith("/"):
            raise ValueError(f"not an absolute path: {absolute!r}")
        return self.root / absolute.lstrip("/")

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
    def osrelease(self) -> Path:
        return self.path("/proc/sys/kernel/osrelease")

    @property
    def boot(self) -> Path:
        return self.path("/boot")

    @property
    def sys_block(self) -> Path:
        return self.path("/sys/block")

    @property
    def memory_block_size(self) -> Path:
        return self.path("/sys/devices/system/memory/block_size_bytes")

    @property
    def sys_nd_devices(self) -> Path:
        return self.path("/sys/bus/nd/devices")

    @property
    def sys_dax_devices(self) -> Path:
        """Device DAX instances (``daxX.Y``: devdax or system-ram namespaces)."""
        return self.path("/sys/bus/dax/devices")

    @property
    def mountinfo(self) -> Path:
        return self.path("/proc/self/mountinfo")

    @property
    def dev(self) -> Path:
        return self.path(DEV_DIR)

    def dev_node(self, name: str) -> Path:
        """``/dev/NAME`` (e.g. ``pmem0``) under the root."""
        return self.path(f"{DEV_DIR}/{name}")

    @property
    def kmsg(self) -> Path:
        return self.path(KMSG_PATH)

    @property
    def journal_socket(self) -> Path:
        """Where journald takes structured entries (absent before journald, in containers
        without it, and in test trees that do not bind it)."""
        return self.path(JOURNAL_SOCKET)

    # --- what pmemd writes ------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.path(STATE_DIR)

    @property
    def runtime_dir(self) -> Path:
        return self.path(RUNTIME_DIR)

    @property
    def filesystems_made(self) -> Path:
        """Per-boot records of the filesystems pmemd made (``/run`` is empty each boot)."""
        return self.path(f"{RUNTIME_DIR}/filesystems")

    @property
    def state_file(self) -> Path:
        """What pmemd put on the command line, and the boot-loop guard."""
        return self.path(f"{STATE_DIR}/state.json")

    @property
    def converged_stamp(self) -> Path:
        """The inputs of the last reconcile that found nothing to do (see
        pmemd.fastpath.converged)."""
        return self.path(f"{STATE_DIR}/converged")

    @property
    def boot_history(self) -> Path:
        """Which ranges were pmem on the last few boots, and the filesystems pmemd made or
        kept on them (see pmemd.fastpath.boot_history)."""
        return self.path(f"{STATE_DIR}/boot-history")

    @property
    def generator_cache(self) -> Path:
        """pmemd-generator's output, keyed by what it depends on (see
        pmemd.fastpath.generator_cache)."""
        return self.path(f"{STATE_DIR}/generator-cache")

    @property
    def pmd_checks(self) -> Path:
        """What verify-dax found about each region's PMD faults on this boot, one file per
        region (see pmemd.core.pmd)."""
        return self.path(f"{RUNTIME_DIR}/pmd")

    def pmd_check(self, region: str) -> Path:
        return self.pmd_checks / region

    @property
    def tracefs_dirs(self) -> tuple[tuple[str, Path], ...]:
        """Where tracefs may be mounted: (absolute path, path under the root)."""
        return tuple((p, self.path(p)) for p in TRACEFS_DIRS)

    @property
    def runtime_reboot_required(self) -> Path:
        return self.path(f"{RUNTIME_DIR}/reboot-required")

    @property
    def runtime_degraded(self) -> Path:
        return self.path(f"{RUNTIME_DIR}/degraded")

    @property
    def boot_id(self) -> Path:
        return self.path("/proc/sys/kernel/random/boot_id")

    @property
    def virtual_roots(self) -> tuple[Path, Path]:
        """procfs and sysfs: their files have no meaningful times, only content."""
        return (self.path("/proc"), self.path("/sys"))

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
    def loader_entries(self) -> Path:
        return self.path("/boot/loader/entries")

    @property
    def etc_kernel_cmdline(self) -> Path:
        return self.path("/etc/kernel/cmdline")

    @property
    def kernel_install_confs(self) -> tuple[Path, ...]:
        """kernel-install's install.conf: the first that exists is read."""
        return (self.path("/etc/kernel/install.conf"), self.path("/usr/lib/kernel/install.conf"))

    @property
    def kernel_install_plugin_dirs(self) -> tuple[Path, ...]:
        """kernel-install's plugins: a name in /etc overrides (or masks) the same in /usr."""
        return (self.path("/etc/kernel/install.d"), self.path("/usr/lib/kernel/install.d"))

    @property
    def kernel_entry_token(self) -> Path:
        return self.path("/etc/kernel/entry-token")

    @property
    def machine_id(self) -> Path:
        return self.path("/etc/machine-id")

    def kernel_images(self, version: str) -> tuple[tuple[str, Path], ...]:
        """Where an installed kernel's image is: (on the target, under the root)."""
        return tuple((p, self.path(p)) for p in (f"/usr/lib/modules/{version}/vmlinuz",
                                                 f"/boot/vmlinuz-{version}"))

    def initrd_images(self, version: str) -> tuple[tuple[str, Path], ...]:
        """Where a kernel's initrd is: Debian's initramfs-tools, then dracut's name."""
        return tuple((p, self.path(p)) for p in (f"/boot/initrd.img-{version}",
                                                 f"/boot/initramfs-{version}.img"))

    @property
    def grub_dropin(self) -> Path:
        return self.path(GRUB_DROPIN)

    @property
    def grub_trial_script(self) -> Path:
        return self.path(GRUB_TRIAL_SCRIPT)

    @property
    def grub_trial_dropin(self) -> Path:
        return self.path(GRUB_TRIAL_DROPIN)

    @property
    def dracut_dir(self) -> Path:
        return self.path(DRACUT_DIR)

    @property
    def grub_cfg(self) -> Path:
        """Debian/Ubuntu's generated GRUB config (what ``update-grub`` writes)."""
        return self.path("/boot/grub/grub.cfg")

    @property
    def grub_env(self) -> Path:
        return self.path("/boot/grub/grubenv")

    @property
    def grub2_cfg(self) -> Path:
        """Fedora/RHEL/SUSE's GRUB config (BIOS, and the target of an EFI stub)."""
        return self.path("/boot/grub2/grub.cfg")

    @property
    def grub2_env(self) -> Path:
        return self.path("/boot/grub2/grubenv")

    @property
    def efi_vendor_dir(self) -> Path:
        """``/boot/efi/EFI``: one directory per OS vendor (fedora, redhat, centos, opensuse)."""
        return self.path("/boot/efi/EFI")

    @property
    def efivars(self) -> Path:
        """Where the kernel shows the UEFI variables (efivarfs)."""
        return self.path("/sys/firmware/efi/efivars")

    @property
    def sys_firmware_efi(self) -> Path:
        """Present when the running system was booted through UEFI."""
        return self.path("/sys/firmware/efi")

    @property
    def usr_lib_kernel_cmdline(self) -> Path:
        return self.path("/usr/lib/kernel/cmdline")

    @property
    def boot_roots(self) -> tuple[tuple[str, Path], ...]:
        """kernel-install's candidates for $BOOT: (absolute path, path under the root)."""
        return tuple((p, self.path(p)) for p in BOOT_ROOTS)

    def program(self, name: str) -> str | None:
        """The absolute path (on the target) of an executable ``name``, or ``None``."""
        for directory in PROGRAM_DIRS:
            candidate = f"{directory}/{name}"
            found = self.path(candidate)
            if found.is_file() and os.access(found, os.X_OK):
                return candidate
        return None

    @property
    def initrd_release(self) -> Path:
        """Exists only inside an initrd (systemd's own test for "in the initrd")."""
        return self.path("/etc/initrd-release")

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
