"""Unified kernel images for the kernel-install backend: type #2 entries, one EFI program
(``$BOOT/EFI/Linux/*.efi``) holding the kernel, the initrd and the command line (its
``.cmdline`` section), which systemd-boot lists beside the type #1 entries.

The command line of such an image changes only by building the image again:

* **built here** — kernel-install's ``layout=uki`` (``/etc/kernel/install.conf``) and a
  plugin that builds the image (``60-ukify.install``, systemd ≥ 254, or dracut's
  ``50-dracut.install``), which takes the command line from ``/etc/kernel/cmdline``: pmemd
  writes that file and runs ``kernel-install add VERSION KERNEL`` for each image's kernel;
* **built by the distribution and signed** — the command line cannot change without the
  vendor's key. pmemd refuses and says what the admin can do: build the images locally, or
  add a command-line addon signed with their own key for that one image
  (``EFI/Linux/IMAGE.efi.extra.d/``). pmemd never writes a global addon
  (``loader/addons/``), which every image would pick up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pmemd.boot.backends.base import on_target
from pmemd.boot.bls import BlsEntry
from pmemd.boot.pe import HEADER_BYTES, NotPE, PEImage, parse_pe, section_text
from pmemd.errors import MachineError
from pmemd.machine.root import MASK, Machine

UKI_DIR = "EFI/Linux"
LAYOUT_UKI = "uki"
# kernel-install plugins that build a UKI when the layout is "uki"
BUILDERS = ("60-ukify.install", "50-dracut.install")
_BOOT_COUNTER = re.compile(r"\+\d+(-\d+)?$")  # systemd-boot's boot counting suffix
_LAYOUT = re.compile(r"""^\s*layout\s*=\s*["']?([A-Za-z0-9_-]*)["']?\s*(#.*)?$""")


class NotAnImage(MachineError):
    """A file in EFI/Linux that is not a unified kernel image (systemd-boot skips it)."""


@dataclass(frozen=True)
class Uki:
    path: Path  # under the machine's root
    shown: str  # as the machine names it
    cmdline: str  # its .cmdline ("" without one)
    version: str | None  # the kernel's release (.uname, else from the file name)
    title: str  # .osrel's PRETTY_NAME, else the file name
    signed: bool

    @property
    def entry_id(self) -> str:
        return self.path.name

    def as_entry(self) -> BlsEntry:
        """The image as systemd-boot lists it, beside the type #1 entries."""
        fields = [("title", self.title), ("linux", self.shown), ("options", self.cmdline)]
        if self.version is not None:
            fields.append(("version", self.version))
        return BlsEntry(self.entry_id, tuple(fields))


def _osrel_value(text: str, key: str) -> str | None:
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == key:
            return value.strip().strip("\"'")
    return None


def read_uki(path: Path, shown: str, token: str | None) -> Uki:
    """One image's command line, kernel release and title, from its sections."""
    try:
        with path.open("rb") as image:
            def read(offset: int, size: int) -> bytes:
                image.seek(offset)
                return image.read(size)
            pe: PEImage = parse_pe(read(0, HEADER_BYTES))
            if pe.section(".linux") is None:
                raise NotPE("no .linux section: not a unified kernel image")
            cmdline = section_text(read, pe, ".cmdline") or ""
            uname = section_text(read, pe, ".uname")
            osrel = section_text(read, pe, ".osrel") or ""
    except NotPE as err:
        raise NotAnImage(f"{shown}: {err}") from err
    except OSError as err:
        raise MachineError(f"{shown}: {err.strerror}") from err
    stem = _BOOT_COUNTER.sub("", path.name.removesuffix(".efi"))
    version = uname.strip() if uname else None
    if version is None and token and stem.startswith(token + "-"):
        version = stem.removeprefix(token + "-")
    title = _osrel_value(osrel, "PRETTY_NAME") or path.name
    return Uki(path, shown, cmdline.strip(), version, title, pe.signed)


def entry_token(machine: Machine) -> str | None:
    """kernel-install's entry token: /etc/kernel/entry-token, else the machine id."""
    for path in (machine.kernel_entry_token, machine.machine_id):
        text = (machine.read_text(path) or "").strip()
        if text:
            return text
    return None


def image_files(boot_root: Path) -> list[Path]:
    """The files systemd-boot looks at as type #2 entries (not all need be images)."""
    directory = boot_root / UKI_DIR
    if not directory.is_dir():
        return []
    return [p for p in sorted(directory.glob("*.efi")) if p.is_file()]


def find_ukis(machine: Machine, boot_root: Path) -> list[Uki]:
    token = entry_token(machine)
    shown = on_target(machine, boot_root / UKI_DIR)
    found = []
    for path in image_files(boot_root):
        try:
            found.append(read_uki(path, f"{shown}/{path.name}", token))
        except NotAnImage:
            continue  # an EFI program, or a broken file: systemd-boot lists neither
    return found


def install_layout(machine: Machine) -> tuple[str | None, Path | None]:
    """install.conf's ``layout=`` and the file that says it (the first install.conf found
    is the one kernel-install reads)."""
    for path in machine.kernel_install_confs:
        text = machine.read_text(path)
        if text is None:
            continue
        layout = None
        for line in text.splitlines():
            found = _LAYOUT.match(line)
            if found:
                layout = found.group(1)
        return layout, path
    return None, None


def uki_builder(machine: Machine) -> Path | None:
    """The kernel-install plugin that builds UKIs here (one in /etc of the same name, an
    empty file or a link to /dev/null, masks the one in /usr)."""
    for name in BUILDERS:
        for directory in machine.kernel_install_plugin_dirs:
            plugin = directory / name
            if plugin.is_symlink() or plugin.exists():
                masked = (plugin.is_symlink() and plugin.readlink() == MASK) or (
                    plugin.is_file() and plugin.stat().st_size == 0)
                if masked:
                    break  # this name is masked: try the next builder
                return plugin
    return None


def local_build(machine: Machine) -> tuple[bool, str]:
    """Whether kernel-install builds the images here, and the evidence either way."""
    layout, conf = install_layout(machine)
    builder = uki_builder(machine)
    confs = " or ".join(on_target(machine, p) for p in machine.kernel_install_confs)
    if conf is None or layout != LAYOUT_UKI:
        where = f"{on_target(machine, conf)} says layout={layout}" if conf is not None and \
            layout else f"no layout=uki in {confs}"
        return False, f"kernel-install does not build them here ({where})"
    said = on_target(machine, conf)
    if builder is None:
        plugins = " or ".join(on_target(machine, p) for p in machine.kernel_install_plugin_dirs)
        return False, (f"{said} says layout=uki, but no plugin builds the images "
                       f"({' or '.join(BUILDERS)} in {plugins})")
    return True, f"built here: layout=uki in {said}, {on_target(machine, builder)}"


def refusal(uki: Uki, why_not_local: str, options: str) -> str:
    """Why pmemd will not change a vendor's image, and what the admin can do."""
    signed = "a signed " if uki.signed else "a "
    return (
        f"the next boot is {signed}unified kernel image, {uki.shown}, whose command line is "
        f"inside the image (its .cmdline section), and {why_not_local}: pmemd cannot change "
        "it without rebuilding" + (" and re-signing" if uki.signed else "") + " the image. "
        "Either build the images locally (layout=uki in /etc/kernel/install.conf and "
        "systemd-ukify's 60-ukify.install; pmemd then writes /etc/kernel/cmdline and runs "
        "kernel-install add), or give this image a command-line addon signed with your own "
        f"Secure Boot key: ukify build --cmdline='{options}' --secureboot-private-key=KEY "
        f"--secureboot-certificate=CERT --output={uki.shown}.extra.d/pmem.addon.efi "
        "(systemd 255 or later). pmemd never writes a global addon (loader/addons/), which "
        "every image would pick up")


def rebuild_argv(machine: Machine, uki: Uki) -> tuple[str, ...]:
    """``kernel-install add VERSION KERNEL [INITRD]``, as the distribution's kernel hooks run
    it: with the initrd the initramfs generator left in /boot (an image built without one
    would not boot)."""
    initrd = next((target for target, path in machine.initrd_images(str(uki.version))
                   if path.is_file()), None)
    kernel = kernel_for(machine, uki)
    return ("kernel-install", "add", str(uki.version), kernel,
            *(() if initrd is None else (initrd,)))


def kernel_for(machine: Machine, uki: Uki) -> str:
    """The installed kernel image ``kernel-install add`` rebuilds ``uki`` from."""
    if uki.version is None:
        raise MachineError(f"{uki.shown}: no .uname section and a file name that does not "
                           "say the kernel's release: pmemd cannot tell which kernel to "
                           "rebuild it from")
    for target, path in machine.kernel_images(uki.version):
        if path.is_file():
            return target
    raise MachineError(f"{uki.shown}: its kernel {uki.version} is not installed (no "
                       f"{' or '.join(t for t, _ in machine.kernel_images(uki.version))}), so "
                       "kernel-install cannot rebuild the image; remove the image or "
                       "reinstall that kernel")
