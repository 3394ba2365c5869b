"""Reboot handling: say "reboot required" where admins and tools look for it, reboot through
systemd when the config asks for it, and never loop.

The guard: pmemd reboots at most once per desired state. When a later boot still runs
without the options the bootloader now carries, the state is *degraded*: pmemd names the
likely cause and does not reboot again until the desired state changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pmemd.atomic import remove_durably, write_atomic
from pmemd.bootloader.base import NextBoot, carries
from pmemd.errors import PmemdError
from pmemd.machine import Machine
from pmemd.model import Cmdline, RebootPolicy
from pmemd.state import Pending

# What Debian's notify-reboot-required writes; update-notifier and motd show it.
REBOOT_REQUIRED_TEXT = "*** System restart required ***\n"
PACKAGE = "pmemd"  # our line in /run/reboot-required.pkgs
REBOOT_UNIT = "reboot.target"
REBOOT_MODE = "replace-irreversibly"  # what 'systemctl reboot' asks of PID 1


class RebootError(PmemdError):
    """systemd refused or could not be asked to reboot."""

    dbus_name = "io.pmemd1.Error.RebootFailed"


class RebootAction(StrEnum):
    NONE = "none"  # the running kernel matches
    MARK = "mark"  # reboot required: say so, do not reboot
    REBOOT = "reboot"  # reboot now (first time for this desired state)
    DEGRADED = "degraded"  # rebooted already, the options still missing: stop


@dataclass(frozen=True)
class RebootDecision:
    action: RebootAction
    pending: Pending | None  # what the guard remembers afterwards
    message: str


def decide_reboot(*, needed: bool, digest: str, boot_id: str | None, pending: Pending | None,
                  policy: RebootPolicy, allowed: bool, cause: Callable[[], str]) -> RebootDecision:
    """(pure) What to do about a running kernel that may differ from the next boot.

    ``allowed``: rebooting is possible at all (the real root, not a dry run). ``cause``
    explains, when degraded, why the last boot did not use the configured options.
    """
    if not needed:
        return RebootDecision(RebootAction.NONE, None, "the running kernel has the options")
    if pending is None or pending.digest != digest:
        pending = Pending(digest, boot_id)
    booted_since = None not in (pending.boot_id, boot_id) and pending.boot_id != boot_id
    if booted_since:
        return RebootDecision(RebootAction.DEGRADED, pending, (
            "the machine has booted since pmemd configured the next boot, and the running "
            f"kernel still lacks the options: {cause()}. pmemd will not reboot again for "
            "this configuration"))
    if pending.rebooted:
        return RebootDecision(RebootAction.MARK, pending, (
            "reboot required; pmemd already asked systemd to reboot on this boot and will "
            "not ask again"))
    if policy is RebootPolicy.AUTO and allowed:
        return RebootDecision(RebootAction.REBOOT, Pending(digest, pending.boot_id, True),
                              "rebooting (boot.reboot: auto; once for this configuration)")
    if policy is RebootPolicy.AUTO:
        return RebootDecision(RebootAction.MARK, pending,
                              "reboot required (boot.reboot: auto reboots only the running "
                              "system, not a --root tree or a dry run)")
    return RebootDecision(RebootAction.MARK, pending,
                          "reboot required (boot.reboot: never): reboot when convenient")


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


def missing_on(running: Cmdline, wanted: Sequence[str]) -> tuple[str, ...]:
    return tuple(a for a in wanted if not carries(running, a))


# --- markers ------------------------------------------------------------------------------


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


def markers_present(machine: Machine) -> tuple[str, ...]:
    paths = (machine.runtime_reboot_required, machine.runtime_degraded)
    return tuple(str(p) for p in paths if p.exists())


# --- the reboot itself ---------------------------------------------------------------------


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
