"""(pure) The reboot guard's decision: pmemd reboots at most once per desired state.

When a later boot still runs without the options the bootloader now carries, the state is
*degraded*: pmemd says why (the caller explains the likely cause) and does not reboot again
until the desired state changes. The markers and the reboot itself are
:mod:`pmemd.boot.reboot`'s."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pmemd.core.cmdline import Cmdline, carries
from pmemd.core.model import RebootPolicy


@dataclass(frozen=True)
class Pending:
    """A desired state the running kernel does not match yet."""

    digest: str  # of the desired arguments (see :func:`desired_digest`)
    boot_id: str | None  # the boot on which pmemd first found it needed a reboot
    rebooted: bool = False  # pmemd asked systemd to reboot for it (at most once)


def desired_digest(args: Iterable[str]) -> str:
    """Identity of a desired command-line state, for the guard."""
    return hashlib.sha256("\n".join(args).encode()).hexdigest()[:16]


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


def missing_on(running: Cmdline, wanted: Sequence[str]) -> tuple[str, ...]:
    return tuple(a for a in wanted if not carries(running, a))
