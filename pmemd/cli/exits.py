"""``pmemd``'s exit statuses, and each of pmemd's errors as one of them: one table."""

from __future__ import annotations

from enum import IntEnum

from pmemd.core.plan import PlanState
from pmemd.errors import ConfigError, PmemdError


class Exit(IntEnum):
    OK = 0  # valid / converged
    FAILURE = 1  # the machine could not be read, a tool failed, no such region …
    USAGE = 2  # bad command line (argparse)
    INVALID_CONFIG = 3
    CHANGES_PENDING = 4  # the boot configuration must change
    REBOOT_REQUIRED = 5  # the boot configuration is right, the running kernel is not
    DEGRADED = 6


# Every error is a failure, but an invalid config, which has its own status.
ERROR_EXITS: tuple[tuple[type[PmemdError], Exit], ...] = (
    (ConfigError, Exit.INVALID_CONFIG),
    (PmemdError, Exit.FAILURE),
)

PLAN_EXITS = {
    PlanState.CONVERGED: Exit.OK,
    PlanState.CHANGES_PENDING: Exit.CHANGES_PENDING,
    PlanState.REBOOT_REQUIRED: Exit.REBOOT_REQUIRED,
    PlanState.DEGRADED: Exit.DEGRADED,
    PlanState.INVALID_CONFIG: Exit.INVALID_CONFIG,
}


def exit_for(err: PmemdError) -> Exit:
    return next(status for kind, status in ERROR_EXITS if isinstance(err, kind))
