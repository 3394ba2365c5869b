"""The wire contract of ``io.pmemd1``: what the service and its clients (``pmemctl``, and any
program) agree on. Both sides import this module and nothing else of each other.

* names: the bus name, object paths (a region's path element escaped as sd-bus escapes
  labels), interfaces;
* methods and properties, with their D-Bus signatures (documented for users in
  ``etc/dbus-1/interfaces/*.xml``, which tests hold against these tables);
* the rows of array results, as types with named fields (never read by position);
* the error names a call may fail with.

It imports nothing, not even the standard library: ``pmemctl status`` must start fast.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

BUS_NAME = "io.pmemd1"
MANAGER_PATH = "/io/pmemd1"
REGION_PATH = "/io/pmemd1/region"
MANAGER_INTERFACE = "io.pmemd1.Manager"
REGION_INTERFACE = "io.pmemd1.Region"
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"
# The file name Validate()'s and PlanConfig()'s errors locate lines in (the text has none
# of its own).
VALIDATE_SOURCE = "<input>"


# --- object paths -------------------------------------------------------------------------


def escape_path_label(label: str) -> str:
    """One object-path element for ``label``, escaped like sd-bus's ``bus_label_escape``:
    every byte outside ``[A-Za-z0-9]``, and a leading digit, becomes ``_`` and two
    lower-case hex digits (``fast-log`` → ``fast_2dlog``, ``0cache`` → ``_30cache``)."""
    if not label:
        return "_"
    out = []
    for index, char in enumerate(label):
        if char.isascii() and (char.isalpha() or (index > 0 and char.isdigit())):
            out.append(char)
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode("utf-8"))
    return "".join(out)


def region_path(name: str) -> str:
    return f"{REGION_PATH}/{escape_path_label(name)}"


# --- members ------------------------------------------------------------------------------


class Method:
    """A method of an interface: its name and its argument and result signatures."""

    __slots__ = ("args", "interface", "name", "result")

    def __init__(self, interface: str, name: str, args: str = "", result: str = "") -> None:
        self.interface, self.name, self.args, self.result = interface, name, args, result

    def __repr__(self) -> str:
        return f"Method({self.interface}.{self.name}({self.args}) -> {self.result or '()'})"


RELOAD = Method(MANAGER_INTERFACE, "Reload")
VALIDATE = Method(MANAGER_INTERFACE, "Validate", "s", "a(sss)")
GET_PLAN = Method(MANAGER_INTERFACE, "GetPlan", "", "s")
PLAN_CONFIG = Method(MANAGER_INTERFACE, "PlanConfig", "s", "s")
GET_MEMORY_MAP = Method(MANAGER_INTERFACE, "GetMemoryMap", "", "a(ttss)a(ttss)")
LIST_REGIONS = Method(MANAGER_INTERFACE, "ListRegions", "", "a(sottssss)")
SET_CONFIG = Method(MANAGER_INTERFACE, "SetConfig", "sb", "s")
APPLY = Method(MANAGER_INTERFACE, "Apply", "b", "sas")
RETRY_TRIAL = Method(MANAGER_INTERFACE, "RetryTrial", "", "sas")
ABORT_TRIAL = Method(MANAGER_INTERFACE, "AbortTrial", "", "s")
MOUNT = Method(REGION_INTERFACE, "Mount")
UNMOUNT = Method(REGION_INTERFACE, "Unmount")
FORMAT = Method(REGION_INTERFACE, "Format", "b")
GET_ALL = Method(PROPERTIES_INTERFACE, "GetAll", "s", "a{sv}")
METHODS = (RELOAD, VALIDATE, GET_PLAN, PLAN_CONFIG, GET_MEMORY_MAP, LIST_REGIONS, SET_CONFIG,
           APPLY, RETRY_TRIAL, ABORT_TRIAL,
           MOUNT, UNMOUNT, FORMAT)

# Read-only properties, name → signature; every one emits PropertiesChanged.
MANAGER_PROPERTIES = {
    "Version": "s",
    "State": "s",  # converged | changes-pending | reboot-required | degraded | invalid-config
    "RebootRequired": "b",
    "Bootloader": "s",
    "BootloaderReason": "s",
    "ConfigPath": "s",
    "CurrentMemmap": "as",
    "DesiredMemmap": "as",
    "Warnings": "a(sss)",  # WarningRow
    "Problems": "a(sssuu)",  # ProblemRow
    "ReadError": "s",
    "Trial": "s",  # none | armed | running | committed | failed (see pmemd.core.trial)
    "TrialReason": "s",
    "KernelImage": "a(tt)",  # (start, size) of this boot's kernel code, rodata, data, bss
}
REGION_PROPERTIES = {
    "Name": "s",
    "Size": "t",
    "Offset": "t",
    "Memmap": "s",
    "Device": "s",
    "Mountpoint": "s",
    "FilesystemType": "s",
    "State": "s",  # ready | missing | mismatch | not-dax | no-pmd | not-mounted | unknown
    "StateReason": "s",
    "Dax": "b",
    "Mode": "s",  # raw | fsdax | devdax | system-ram (the config's; State says if it is so)
    "PageMap": "s",  # mem | dev for fsdax, devdax and system-ram; "" for raw
    "Align": "t",  # devdax and system-ram: the device's fault size in bytes; else 0
    "CharacterDevice": "s",  # devdax and system-ram: /dev/daxX.Y on this boot, or ""
}
READY = "ready"  # a region's State when its device (and DAX mount) is there


# --- rows ---------------------------------------------------------------------------------


class RegionRow:
    """One element of ``ListRegions``: ``(sottssss)``."""

    __slots__ = ("device", "fstype", "mountpoint", "name", "offset", "path", "size", "state")

    def __init__(self, *, name: str, path: str, offset: int, size: int, device: str,
                 mountpoint: str, fstype: str, state: str) -> None:
        self.name, self.path, self.offset, self.size = name, path, offset, size
        self.device, self.mountpoint, self.fstype, self.state = device, mountpoint, fstype, state

    def wire(self) -> list[object]:
        return [self.name, self.path, self.offset, self.size, self.device, self.mountpoint,
                self.fstype, self.state]

    @classmethod
    def read(cls, value: Sequence[object]) -> RegionRow:
        name, path, offset, size, device, mountpoint, fstype, state = value
        return cls(name=str(name), path=str(path), offset=int(str(offset)),
                   size=int(str(size)), device=str(device), mountpoint=str(mountpoint),
                   fstype=str(fstype), state=str(state))


class WarningRow:
    """One element of ``Warnings`` and of ``Validate``'s result: ``(sss)``."""

    __slots__ = ("code", "message", "region")

    def __init__(self, code: str, region: str, message: str) -> None:
        self.code, self.region, self.message = code, region, message

    def wire(self) -> list[object]:
        return [self.code, self.region, self.message]

    @classmethod
    def read(cls, value: Sequence[object]) -> WarningRow:
        code, region, message = value
        return cls(str(code), str(region), str(message))


class ProblemRow:
    """One element of ``Problems``: ``(sssuu)`` — message, key path, file, line, column
    (file ``""`` and line 0 when the problem has no place)."""

    __slots__ = ("column", "file", "key", "line", "message")

    def __init__(self, message: str, key: str, file: str, line: int, column: int) -> None:
        self.message, self.key, self.file, self.line, self.column = (message, key, file, line,
                                                                     column)

    def wire(self) -> list[object]:
        return [self.message, self.key, self.file, self.line, self.column]

    @classmethod
    def read(cls, value: Sequence[object]) -> ProblemRow:
        message, key, file, line, column = value
        return cls(str(message), str(key), str(file), int(str(line)), int(str(column)))

    def render(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}: " if self.file else ""
        return f"{where}{self.key + ': ' if self.key else ''}{self.message}"


class MapEntry:
    """One element of ``GetMemoryMap``'s results: ``(ttss)`` — start, size, type, label."""

    __slots__ = ("kind", "label", "size", "start")

    def __init__(self, start: int, size: int, kind: str, label: str) -> None:
        self.start, self.size, self.kind, self.label = start, size, kind, label

    def wire(self) -> list[object]:
        return [self.start, self.size, self.kind, self.label]


# --- errors -------------------------------------------------------------------------------


class ErrorName:
    """The errors a call may fail with (besides the bus's own)."""

    FAILED = "io.pmemd1.Error.Failed"
    INVALID_CONFIG = "io.pmemd1.Error.InvalidConfig"  # every problem, FILE:LINE:COL located
    MACHINE = "io.pmemd1.Error.Machine"  # the machine, a device or the boot config
    COMMAND_FAILED = "io.pmemd1.Error.CommandFailed"  # a tool failed; its output follows
    BUSY = "io.pmemd1.Error.Busy"  # another change is in progress (or: mounted)
    NOT_FOUND = "io.pmemd1.Error.NotFound"  # no such region (any more)
    NOT_SUPPORTED = "io.pmemd1.Error.NotSupported"  # not for this region, or not under --root
    REBOOT_FAILED = "io.pmemd1.Error.RebootFailed"
    REFUSED = "io.pmemd1.Error.Refused"  # Format would destroy what must not be
    NOT_DAX = "io.pmemd1.Error.NotDax"
    SYSTEMD = "io.pmemd1.Error.Systemd"  # systemd refused or failed a job
    ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"  # polkit (or root only) said no


# Replies that mean the service is not there and cannot be started by the bus.
SERVICE_ABSENT = ("org.freedesktop.DBus.Error.ServiceUnknown",
                  "org.freedesktop.DBus.Error.NameHasNoOwner")
# Replies that mean "not allowed" (polkit, or the bus's own policy).
NOT_ALLOWED = (ErrorName.ACCESS_DENIED,
               "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")
NO_REPLY = "org.freedesktop.DBus.Error.NoReply"
