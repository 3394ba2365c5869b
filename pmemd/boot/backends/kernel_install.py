"""systemd-boot with kernel-install: the options go into ``/etc/kernel/cmdline`` (what
``kernel-install add`` puts into the entries of kernels installed later) and into the
``options`` lines of the type #1 entries already in ``$BOOT/loader/entries``.

The entries are edited directly rather than regenerated with ``kernel-install add``:
regenerating re-runs every install plugin (initramfs builds included) at boot time.

A trial boot is pmemd's own entry ``pmemd-trial.conf``, a copy of the default entry with
the trial's command line, selected for one boot with ``bootctl set-oneshot`` (an EFI
variable systemd-boot removes before it starts the kernel). The copy's ``sort-key`` sorts
after the default entry's, so that it never becomes the default: without a ``sort-key`` on
the default entry (systemd-boot then orders by file name), or with a ``default`` in
loader.conf that would match it, there is no trial.

Unified kernel images (``$BOOT/EFI/Linux/*.efi``, :mod:`pmemd.boot.backends.uki`) are
entries too: built here, they are rebuilt with ``kernel-install add`` once
``/etc/kernel/cmdline`` carries the options; a vendor's image that is the next boot is
refused with what the admin can do instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pmemd.boot.backends import uki
from pmemd.boot.backends.base import (
    Backend,
    BootWrite,
    FileWrite,
    NextBoot,
    Probe,
    default_entry_file,
    file_write,
    on_target,
)
from pmemd.boot.bls import (
    SORT_KEY,
    edit_entry_options,
    match_glob,
    menu_order,
    parse_bls_entry,
    trial_copy,
)
from pmemd.core.cmdline import (
    Cmdline,
    CmdlineEdit,
    edit_args_text,
    parse_cmdline,
    render_cmdline,
    trial_args_text,
)
from pmemd.core.model import BootloaderChoice
from pmemd.errors import BootConfigError
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner

LOADER_CONF = "loader/loader.conf"
ENTRIES = "loader/entries"
SYSTEMD_BOOT_GLOB = "EFI/systemd/systemd-boot*.efi"
# What kernel-install drops when it falls back to /proc/cmdline (90-loaderentry.install).
_NOT_FOR_NEW_ENTRIES = ("BOOT_IMAGE", "initrd")
TRIAL_ID = "pmemd-trial"  # the trial entry: loader/entries/pmemd-trial.conf
TRIAL_SORT_SUFFIX = "-pmemd-trial"  # appended to the default's sort-key: sorts after it
# systemd-boot's one-time selection, in efivarfs (vendor: the Boot Loader Interface's GUID)
ONE_SHOT_VARIABLE = "LoaderEntryOneShot-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"


def find_boot_root(machine: Machine) -> Path | None:
    """kernel-install's ``$BOOT``: the first candidate with type #1 entries or unified
    kernel images."""
    for _, path in machine.boot_roots:
        entries = path / ENTRIES
        if (entries.is_dir() and any(entries.glob("*.conf"))) or uki.image_files(path):
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
        """The entries, not pmemd's trial entry (never the default, never edited)."""
        if not self.entries_dir.is_dir():
            return []
        return sorted(p for p in self.entries_dir.glob("*.conf")
                      if p.name != f"{TRIAL_ID}.conf")

    def _default_pattern(self) -> str | None:
        """loader.conf's ``default`` (a glob over entry ids), if any."""
        pattern = None
        for line in (self.machine.read_text(self.boot_root / LOADER_CONF) or "").splitlines():
            key, _, value = line.strip().partition(" ")
            if key == "default" and value.strip():
                pattern = value.strip()
        return pattern

    def _ukis(self) -> list[uki.Uki]:
        return uki.find_ukis(self.machine, self.boot_root)

    def read_next_boot(self) -> NextBoot:
        m = self.machine
        entries = []
        for path in self._entry_files():
            entry = parse_bls_entry(path.name.removesuffix(".conf"), m.read_text(path) or "")
            if entry.kernel is not None:  # type #1 Linux entries; EFI programs carry no options
                entries.append(entry)
        images = {image.entry_id: image for image in self._ukis()}
        entries.extend(image.as_entry() for image in images.values())
        ordered = menu_order(entries)
        if not ordered:
            return NextBoot(None, str(self.entries_dir), note="no Linux entries")
        conf = self.boot_root / LOADER_CONF
        pattern = self._default_pattern()
        chosen = match_glob(ordered, pattern) if pattern and not pattern.startswith("@") \
            else None
        if chosen is not None:
            how = f"'default {pattern}' in {conf}"
        else:
            chosen = ordered[0]
            how = "the newest entry" + (f"; 'default {pattern}' in {conf} matches none "
                                        "(or is an EFI variable)" if pattern else "")
        image = images.get(chosen.name)
        if image is not None:
            return NextBoot(parse_cmdline(image.cmdline), str(image.path), chosen.title,
                            image.shown, how + "; a unified kernel image: its .cmdline")
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
        files: list[FileWrite] = []
        if old is not None or wanted.add:  # no template to write when it carries nothing
            files.extend(file_write(
                m.etc_kernel_cmdline,
                edit_args_text(old if old is not None else self._cmdline_base(), wanted), old))
        for path in self._entry_files():
            text = m.read_text(path) or ""
            if parse_bls_entry(path.name, text).kernel is None:
                continue
            files.extend(file_write(path, edit_entry_options(text, wanted), text))
        images = [i for i in self._ukis() if edit_args_text(i.cmdline, wanted) != i.cmdline]
        if not images:
            return BootWrite(files=tuple(files))
        local, why = uki.local_build(m)
        if not local:
            # Another vendor image that is not the next boot stays as it is (as EFI
            # programs do); the next boot's cannot.
            chosen = next((i for i in images if str(i.path) == current.source), None)
            if chosen is not None:
                raise BootConfigError(uki.refusal(chosen, why, " ".join(wanted.add)))
            return BootWrite(files=tuple(files))
        # /etc/kernel/cmdline first (the files), then each image rebuilt from it
        return BootWrite(files=tuple(files),
                         commands=tuple(uki.rebuild_argv(m, i) for i in images),
                         tool_files=tuple(i.path for i in images))

    @property
    def _trial_path(self) -> Path:
        return self.entries_dir / f"{TRIAL_ID}.conf"

    def trial_support(self, runner: Runner) -> str | None:
        del runner
        m = self.machine
        source = self.read_next_boot().source
        if source.endswith(".efi"):
            return (f"the default entry is a unified kernel image ({source}): its command "
                    "line is inside the image, and pmemd does not build a second image to try")
        if m.program("bootctl") is None:
            return "no bootctl program (systemd-boot's one-time selection)"
        if not m.efivars.is_dir():
            return (f"no EFI variables ({on_target(m, m.efivars)}): bootctl set-oneshot "
                    "needs them")
        pattern = self._default_pattern()
        if pattern is not None and match_glob([parse_bls_entry(TRIAL_ID, "")], pattern):
            return (f"'default {pattern}' in {self.boot_root / LOADER_CONF} would also match "
                    "a trial entry")
        entry = parse_bls_entry(TRIAL_ID, m.read_text(Path(source)) or "")
        if entry.value(SORT_KEY) is None:
            return (f"the default entry ({source}) has no sort-key: systemd-boot would sort "
                    "a trial entry before it")
        return None

    def plan_trial(self, current: NextBoot, owned: Sequence[str], trial: Sequence[str]
                   ) -> BootWrite:
        m = self.machine
        text, cmdline = default_entry_file(m, current)
        key = parse_bls_entry(TRIAL_ID, text).value(SORT_KEY)
        options = trial_args_text(render_cmdline(a.text for a in cmdline.args), owned, trial)
        copy = trial_copy(text, options, None if key is None else key + TRIAL_SORT_SUFFIX)
        files = file_write(self._trial_path, copy, m.read_text(self._trial_path), own=True)
        return BootWrite(files=files,
                         commands=(("bootctl", "set-oneshot", f"{TRIAL_ID}.conf"),))

    def plan_end_trial(self, current: NextBoot, owned: Sequence[str],
                       edit: CmdlineEdit) -> BootWrite:
        m = self.machine
        commit = self.plan_write(current, edit, owned)  # the cmdline and the entries
        files = file_write(self._trial_path, None, m.read_text(self._trial_path), own=True)
        # systemd-boot removes the selection as it boots the entry; one left (the trial
        # boot never happened) goes: an empty name removes it
        left = (m.efivars / ONE_SHOT_VARIABLE).exists()
        return BootWrite(files=(*files, *commit.files),
                         commands=(("bootctl", "set-oneshot", ""),) if left else ())

    def read_trial(self) -> Cmdline | None:
        text = self.machine.read_text(self._trial_path)
        if text is None:
            return None
        return parse_cmdline(parse_bls_entry(TRIAL_ID, text).options())

    def inputs(self) -> tuple[Path, ...]:
        m = self.machine
        return (m.etc_kernel_cmdline, m.usr_lib_kernel_cmdline, self.boot_root / LOADER_CONF,
                self.entries_dir, *self._entry_files(), self._trial_path,
                self.boot_root / uki.UKI_DIR, *uki.image_files(self.boot_root),
                *m.kernel_install_confs, *m.kernel_install_plugin_dirs)


def probe(machine: Machine) -> Probe:
    kind = BootloaderChoice.KERNEL_INSTALL
    boot = find_boot_root(machine)
    if boot is None:
        roots = ", ".join(str(p) for _, p in machine.boot_roots)
        return Probe(kind, None, f"no type #1 entries ({ENTRIES}) or unified kernel images "
                                 f"({uki.UKI_DIR}) in {roots}")
    evidence = systemd_boot_evidence(machine)
    if evidence is None:
        return Probe(kind, None, f"entries in {boot / ENTRIES}, but no systemd-boot "
                                 f"({LOADER_CONF} or {SYSTEMD_BOOT_GLOB}) in any $BOOT")
    count = len(list((boot / ENTRIES).glob("*.conf")))
    found = f"systemd-boot ({evidence}) and {count} entries in {boot / ENTRIES}"
    images = len(uki.image_files(boot))
    if images:
        local, why = uki.local_build(machine)
        found += (f" and {images} unified kernel images in {boot / uki.UKI_DIR} ({why}"
                  + ("" if local else "; pmemd cannot change their command line") + ")")
    return Probe(kind, KernelInstall(machine, boot),
                 f"{found}; pmemd writes {machine.etc_kernel_cmdline} and the entries' options")
