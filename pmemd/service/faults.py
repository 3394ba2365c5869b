"""Each of pmemd's errors as the D-Bus error a caller receives: one table, by meaning."""

from __future__ import annotations

from pmemd.errors import (
    ApplyAfterSetConfigFailed,
    BootConfigError,
    Busy,
    CommandError,
    ConfigError,
    MachineError,
    NoBootloader,
    NoDevice,
    NoFilesystem,
    NoSuchRegion,
    NotAuthorized,
    NotDax,
    NotLive,
    PmemdError,
    RebootError,
    Refused,
    SystemdError,
)
from pmemd.service.api import ErrorName

# Checked in order: a subclass before its base.
ERROR_NAMES: tuple[tuple[type[PmemdError], str], ...] = (
    (ConfigError, ErrorName.INVALID_CONFIG),
    (NoSuchRegion, ErrorName.NOT_FOUND),
    (NoFilesystem, ErrorName.NOT_SUPPORTED),
    (NotLive, ErrorName.NOT_SUPPORTED),
    (MachineError, ErrorName.MACHINE),
    (NoDevice, ErrorName.MACHINE),
    (NoBootloader, ErrorName.MACHINE),
    (BootConfigError, ErrorName.MACHINE),  # also a failed rollback (RollbackError)
    (CommandError, ErrorName.COMMAND_FAILED),
    (RebootError, ErrorName.REBOOT_FAILED),
    (Refused, ErrorName.REFUSED),
    (NotDax, ErrorName.NOT_DAX),
    (SystemdError, ErrorName.SYSTEMD),
    (Busy, ErrorName.BUSY),
    (NotAuthorized, ErrorName.ACCESS_DENIED),
)


def error_name(err: PmemdError) -> str:
    """The D-Bus error name ``err`` is sent as."""
    if isinstance(err, ApplyAfterSetConfigFailed):
        return error_name(err.cause)
    return next((name for kind, name in ERROR_NAMES if isinstance(err, kind)), ErrorName.FAILED)
