"""systemd-boot with kernel-install: the options go into ``/etc/kernel/cmdline`` (what
``kernel-install add`` puts into the entries of kernels installed later) and into the
``options`` lines of the type #1 entries already in ``$BOOT/loader/entries``.

The entries are edited directly rather than regenerated with ``kernel-install add``:
regenerating re-runs every install plugin (initramfs builds included) at boot time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pmemd.boot.backends.base import Backend, BootWrite, FileWrite, NextBoot, Probe, file_write
from pmemd.boot.bls import edit_entry_options, match_glob, menu_order, parse_bls_entry
from pmemd.core.cmdline import CmdlineEdit, edit_args_text, parse_cmdline, render_cmdline
from pmemd.core.model import BootloaderChoice
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner

LOADER_CONF = "loader/loader.conf"
ENTRIES = "loader/entries"
SYSTEMD_BOOT_GLOB = "EFI/systemd/systemd-boot*.efi"
# What kernel-install drops when it falls back to /proc/cmdline (90-loaderentry.install).
_NOT_FOR_NEW_ENTRIES = ("BOOT_IMAGE", "initrd")


def find_boot_root(machine: Machine) -> Path | None:
    """kernel-install's ``$BOOT``: the first candidate with type #1 entries."""
    for _, path in machine.boot_roots:
        entries = path / ENTRIES
        if entries.is_dir() and any(entries.glob("*.conf")):
            return path
    return None


def systemd_boot_evidence(machine: Machine) -> Path | None:
    """A file that shows systemd-boot is installed (loader.conf or its EFI binary)."""
    for _, path in machine.boot_roots:
        conf = path / LOADER_CONF
        if conf.is_file():
            return conf
        binary = next(iter(sorted(path.glob(SYSTEMD_BOOT_GLOB))), None)
        if binary is not None:
            return binary
    return None


@dataclass(frozen=True)
class KernelInstall(Backend):
    boot_root: Path = Path("/boot")

    @property
    def kind(self) -> BootloaderChoice:
        return BootloaderChoice.KERNEL_INSTALL

    @property
    def entries_dir(self) -> Path:
        return self.boot_root / ENTRIES

    def _entry_files(self) -> list[Path]:
        return sorted(self.entries_dir.glob("*.conf")) if self.entries_dir.is_dir() else []

    def read_next_boot(self) -> NextBoot:
        m = self.machine
        entries = []
        for path in self._entry_files():
            entry = parse_bls_entry(path.name.removesuffix(".conf"), m.read_text(path) or "")
            if entry.kernel is not None:  # type #1 Linux entries; EFI programs carry no options
                entries.append(entry)
        ordered = menu_order(entries)
        if not ordered:
            return NextBoot(None, str(self.entries_dir), note="no Linux entries")
        conf = self.boot_root / LOADER_CONF
        pattern = None
        for line in (m.read_text(conf) or "").splitlines():
            key, _, value = line.strip().partition(" ")
            if key == "default" and value.strip():
                pattern = value.strip()
        chosen = match_glob(ordered, pattern) if pattern and not pattern.startswith("@") \
            else None
        if chosen is not None:
            how = f"'default {pattern}' in {conf}"
        else:
            chosen = ordered[0]
            how = "the newest entry" + (f"; 'default {pattern}' in {conf} matches none "
                                        "(or is an EFI variable)" if pattern else "")
        return NextBoot(parse_cmdline(chosen.options()),
                        str(self.entries_dir / f"{chosen.name}.conf"), chosen.title,
                        chosen.kernel, how)

    def _cmdline_base(self) -> str:
        """What kernel-install would use without ``/etc/kernel/cmdline``."""
        m = self.machine
        text = m.read_text(m.usr_lib_kernel_cmdline)
        if text is not None:
            return text
        running = parse_cmdline((m.read_text(m.cmdline) or "").strip())
        return render_cmdline(a.text for a in running.args
                              if a.key not in _NOT_FOR_NEW_ENTRIES) + "\n"

    def plan_write(self, current: NextBoot, edit: CmdlineEdit,
                   owned_after: Sequence[str]) -> BootWrite:
        m = self.machine
        # Every file carries what pmemd owns: the default entry, the other entries and
        # the template for kernels installed later.
        wanted = CmdlineEdit(add=tuple(owned_after), remove=edit.remove)
        old = m.read_text(m.etc_kernel_cmdline)
        files: list[FileWrite] = list(file_write(
            m.etc_kernel_cmdline,
            edit_args_text(old if old is not None else self._cmdline_base(), wanted), old))
        for path in self._entry_files():
            text = m.read_text(path) or ""
            if parse_bls_entry(path.name, text).kernel is None:
                continue
            files.extend(file_write(path, edit_entry_options(text, wanted), text))
        return BootWrite(files=tuple(files))

    def trial_support(self, runner: Runner) -> str | None:
        del runner
        return ("pmemd has no trial boot for systemd-boot yet (its one-time selection, "
                "bootctl set-oneshot, is an EFI variable pmemd has not proven through a real "
                "reboot)")

    def inputs(self) -> tuple[Path, ...]:
        m = self.machine
        return (m.etc_kernel_cmdline, m.usr_lib_kernel_cmdline, self.boot_root / LOADER_CONF,
                self.entries_dir, *self._entry_files())


def probe(machine: Machine) -> Probe:
    kind = BootloaderChoice.KERNEL_INSTALL
    boot = find_boot_root(machine)
    if boot is None:
        roots = ", ".join(str(p / ENTRIES) for _, p in machine.boot_roots)
        return Probe(kind, None, f"no type #1 entries in {roots}")
    evidence = systemd_boot_evidence(machine)
    if evidence is None:
        return Probe(kind, None, f"entries in {boot / ENTRIES}, but no systemd-boot "
                                 f"({LOADER_CONF} or {SYSTEMD_BOOT_GLOB}) in any $BOOT")
    count = len(list((boot / ENTRIES).glob("*.conf")))
    return Probe(kind, KernelInstall(machine, boot),
                 f"systemd-boot ({evidence}) and {count} entries in {boot / ENTRIES}; pmemd "
                 f"writes {machine.etc_kernel_cmdline} and the entries' options")
