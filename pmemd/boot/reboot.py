"""Reboot handling: say "reboot required" where admins and tools look for it, reboot through
systemd when the config asks for it, and never loop.

The guard's decision is :mod:`pmemd.core.reboot`'s; here are its markers, the likely cause
when a boot did not carry the options (for *degraded*), and the reboot itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pmemd.boot.backends.base import NextBoot
from pmemd.core.cmdline import Cmdline
from pmemd.core.events import reboot_requested
from pmemd.errors import RebootError
from pmemd.machine.atomic import remove_durably, write_atomic
from pmemd.machine.journal import send_event
from pmemd.machine.root import Machine

# What Debian's notify-reboot-required writes; update-notifier and motd show it.
REBOOT_REQUIRED_TEXT = "*** System restart required ***\n"
PACKAGE = "pmemd"  # our line in /run/reboot-required.pkgs
REBOOT_UNIT = "reboot.target"
REBOOT_MODE = "replace-irreversibly"  # what 'systemctl reboot' asks of PID 1


def explain_missing_options(running: Cmdline, next_boot: NextBoot, missing: Sequence[str],
                            bootloader: str, *, rewritten: bool = False) -> str:
    """(pure) The likely reason a boot did not carry options its default entry has.

    ``rewritten``: the bootloader config had lost pmemd's options since pmemd wrote them
    (this run wrote them again).
    """
    image = next((a.value for a in running.args if a.key == "BOOT_IMAGE"), None)
    kernel = next_boot.kernel
    release = image.rsplit("vmlinuz-", 1)[-1] if image and "vmlinuz-" in image else None
    lacking = " ".join(missing)
    if rewritten:
        return (f"something rewrote the bootloader configuration without {lacking} after "
                f"pmemd wrote it (pmemd used {bootloader}); pmemd wrote the options again: "
                "find what regenerates the configuration, then reboot by hand")
    if image and kernel and release and release not in kernel:
        return (f"it booted {image}, not the default entry's kernel {kernel} "
                f"({next_boot.describe()}): an entry was picked at the boot menu, or a saved "
                "or one-time entry points elsewhere (grub-set-default, grub-reboot, grubenv)")
    return (f"it lacks {lacking} although {next_boot.describe()} carries them: it booted "
            "another entry (picked or edited at the boot menu, or a one-time entry set with "
            "grub-reboot), or the firmware starts a bootloader or config that pmemd did not "
            f"write (pmemd used {bootloader}; on EFI machines see efibootmgr -v)")


def read_boot_id(machine: Machine) -> str | None:
    text = machine.read_text(machine.boot_id)
    if text is None or not text.strip():
        return None
    return text.strip()


def _packages(machine: Machine) -> list[str]:
    text = machine.read_text(machine.reboot_required_pkgs) or ""
    return [line for line in text.splitlines() if line.strip()]


def mark_reboot_required(machine: Machine, text: str) -> None:
    """``/run/pmemd/reboot-required`` (why), Debian's ``/run/reboot-required`` and our line
    in ``/run/reboot-required.pkgs``."""
    if machine.read_text(machine.runtime_reboot_required) != text:
        write_atomic(machine.runtime_reboot_required, text)
    if machine.read_text(machine.reboot_required) is None:
        write_atomic(machine.reboot_required, REBOOT_REQUIRED_TEXT)
    packages = _packages(machine)
    if PACKAGE not in packages:
        write_atomic(machine.reboot_required_pkgs, "".join(f"{p}\n" for p in
                                                           [*packages, PACKAGE]))


def clear_reboot_required(machine: Machine) -> None:
    """Take back pmemd's markers; Debian's file stays while other packages still ask."""
    remove_durably(machine.runtime_reboot_required)
    packages = _packages(machine)
    if PACKAGE not in packages:
        return
    others = [p for p in packages if p != PACKAGE]
    if others:
        write_atomic(machine.reboot_required_pkgs, "".join(f"{p}\n" for p in others))
        return
    remove_durably(machine.reboot_required_pkgs)
    remove_durably(machine.reboot_required)


def mark_degraded(machine: Machine, reason: str | None) -> None:
    if reason is None:
        remove_durably(machine.runtime_degraded)
    elif machine.read_text(machine.runtime_degraded) != reason + "\n":
        write_atomic(machine.runtime_degraded, reason + "\n")


def request_reboot() -> None:
    """Ask systemd (PID 1, over the system bus) to reboot, as ``systemctl reboot`` does."""
    try:
        from pystemd.systemd1 import Manager
    except ImportError as err:
        raise RebootError(f"cannot reboot: pystemd is not installed ({err})") from None
    try:
        with Manager() as manager:
            manager.Manager.StartUnit(REBOOT_UNIT.encode(), REBOOT_MODE.encode())
    except Exception as err:  # pystemd raises its own DBusError and OSError subclasses
        raise RebootError(f"systemd did not start {REBOOT_UNIT}: {err}") from None


def reboot_now(machine: Machine, reboot: Callable[[], None], reason: str) -> None:
    """``reboot`` (normally :func:`request_reboot`), said first in the journal with why."""
    send_event(machine, reboot_requested(reason))
    reboot()
