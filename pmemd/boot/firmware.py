"""Which boot loader started the running system, as the firmware's variables say — what
``bootctl status`` shows as the boot loader's product. systemd-boot always sets
``LoaderInfo`` (the Boot Loader Interface); GRUB sets it only with its ``bli`` module
(2.12 and later); a BIOS boot has no EFI variables at all, and systemd-boot runs only on
UEFI. Detection uses it when the files of two bootloaders are on the machine (GRUB's left
behind after a move to systemd-boot, or the other way round)."""

from __future__ import annotations

from dataclasses import dataclass

from pmemd.boot.backends.base import on_target
from pmemd.machine.root import Machine

# The Boot Loader Interface's vendor GUID
LOADER_INFO = "LoaderInfo-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
_ATTRIBUTES = 4  # efivarfs: each variable's first four bytes
SYSTEMD_BOOT = "systemd-boot"


@dataclass(frozen=True)
class RunningLoader:
    product: str | None  # "systemd-boot 252", "GRUB 2.12": the variable's text
    systemd_boot: bool | None  # whether systemd-boot ran; None: cannot tell
    evidence: str


def decode_variable(data: bytes) -> str:
    """(pure) An efivarfs file's value as text: attributes, then UTF-16LE up to a NUL."""
    text = data[_ATTRIBUTES:].decode("utf-16-le", errors="replace")
    return text.split("\0", 1)[0].strip()


def running_loader(machine: Machine) -> RunningLoader:
    efi = machine.sys_firmware_efi
    if not efi.is_dir():
        return RunningLoader(None, False, f"this boot was through BIOS (no "
                                          f"{on_target(machine, efi)}), and systemd-boot "
                                          "runs only on UEFI")
    variables = machine.efivars
    if not variables.is_dir() or not any(variables.iterdir()):
        return RunningLoader(None, None, f"UEFI, but no EFI variables in "
                                         f"{on_target(machine, variables)} to tell which "
                                         "boot loader ran")
    info = variables / LOADER_INFO
    try:
        product = decode_variable(info.read_bytes())
    except FileNotFoundError:
        return RunningLoader(None, False, "UEFI without a LoaderInfo variable: not "
                                          "systemd-boot, which always sets it")
    except OSError as err:
        return RunningLoader(None, None, f"{on_target(machine, info)}: {err.strerror}")
    return RunningLoader(product, product.startswith(SYSTEMD_BOOT),
                         f"the firmware's LoaderInfo variable says {product!r}")
