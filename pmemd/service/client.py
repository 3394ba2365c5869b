"""The client side of ``io.pmemd1``, over systemd's own D-Bus library (sd-bus, in
``libsystemd.so.0``, which every systemd machine has) through :mod:`ctypes`.

This is what ``pmemctl`` talks through. A status query must cost little more than the
interpreter's start-up, as ``hostnamectl`` costs little more than ``busctl``: a D-Bus
library written in Python (dbus-next, with asyncio) takes several times that to import,
and the service itself is the only part of pmemd that needs one. sd-bus also does what
``systemctl`` does for us: ``$DBUS_SYSTEM_BUS_ADDRESS``, and the
``ALLOW_INTERACTIVE_AUTHORIZATION`` flag so that polkit may ask for a password.

Only :mod:`pmemd.service.api` and the standard library are imported.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time

from pmemd.service.api import GET_ALL, Method

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

UINT64_MAX = (1 << 64) - 1  # sd_bus_call's timeout: no timeout at all
USEC = 1_000_000
QUERY_TIMEOUT = 25.0  # seconds, sd-bus's own default for a method call
CHANGE_TIMEOUT = 900.0  # seconds: a change may run update-grub, mkfs, or wait for a password
DEFAULT_ADDRESS = "unix:path=/run/dbus/system_bus_socket"
_BASIC: dict[str, type[ctypes._SimpleCData[Any]]] = {
    "y": ctypes.c_uint8, "b": ctypes.c_int, "n": ctypes.c_int16, "q": ctypes.c_uint16,
    "i": ctypes.c_int32, "u": ctypes.c_uint32, "x": ctypes.c_int64, "t": ctypes.c_uint64,
    "d": ctypes.c_double, "h": ctypes.c_int, "s": ctypes.c_char_p, "o": ctypes.c_char_p,
    "g": ctypes.c_char_p,
}


TIMED_OUT = "org.freedesktop.DBus.Error.Timeout"  # a call's answer did not come in time


class BusError(Exception):
    """A call that failed: the D-Bus error's name (empty when the bus itself could not be
    reached) and its message."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


class _Error(ctypes.Structure):
    _fields_ = (("name", ctypes.c_char_p), ("message", ctypes.c_char_p),
                ("_need_free", ctypes.c_int))


def _load() -> ctypes.CDLL:
    """libsystemd, with the prototypes of the calls used here."""
    lib = ctypes.CDLL("libsystemd.so.0", use_errno=True)
    p, c_int, c_char = ctypes.c_void_p, ctypes.c_int, ctypes.c_char
    pointer, text = ctypes.POINTER, ctypes.c_char_p
    prototypes = {
        "sd_bus_open_system": (c_int, [pointer(p)]),
        "sd_bus_is_ready": (c_int, [p]),
        "sd_bus_process": (c_int, [p, p]),
        "sd_bus_wait": (c_int, [p, ctypes.c_uint64]),
        "sd_bus_close_unref": (p, [p]),
        "sd_bus_message_new_method_call": (c_int, [p, pointer(p), text, text, text, text]),
        "sd_bus_message_set_allow_interactive_authorization": (c_int, [p, c_int]),
        "sd_bus_message_append_basic": (c_int, [p, c_char, p]),
        "sd_bus_call": (c_int, [p, p, ctypes.c_uint64, pointer(_Error), pointer(p)]),
        "sd_bus_message_peek_type": (c_int, [p, pointer(c_char), pointer(text)]),
        "sd_bus_message_read_basic": (c_int, [p, c_char, p]),
        "sd_bus_message_enter_container": (c_int, [p, c_char, text]),
        "sd_bus_message_exit_container": (c_int, [p]),
        "sd_bus_message_unref": (p, [p]),
        "sd_bus_error_free": (None, [pointer(_Error)]),
    }
    for name, (result, args) in prototypes.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = result, args
    return lib


def _check(result: int, what: str) -> int:
    if result < 0:
        raise BusError("", f"{what}: {os.strerror(-result)}")
    return result


class _Reply:
    """Reads a reply message's values into Python: lists for arrays and structs, dicts for
    dictionaries, ``str``/``int``/``bool``/``float`` for the basic types."""

    def __init__(self, lib: ctypes.CDLL, message: int) -> None:
        self.lib, self.message = lib, message

    def values(self) -> list[object]:
        found = []
        while (value := self._next()) is not _END:
            found.append(value)
        return found

    def _next(self) -> object:
        kind, contents = ctypes.c_char(), ctypes.c_char_p()
        if _check(self.lib.sd_bus_message_peek_type(self.message, ctypes.byref(kind),
                                                    ctypes.byref(contents)), "peek") == 0:
            return _END
        code = kind.value.decode()
        if code in _BASIC:
            return self._basic(code)
        inner = contents.value or b""
        _check(self.lib.sd_bus_message_enter_container(self.message, kind, inner), "enter")
        items = self.values()
        _check(self.lib.sd_bus_message_exit_container(self.message), "exit")
        if code == "v":
            return items[0]
        if code == "a" and inner.startswith(b"{"):
            return {entry[0]: entry[1] for entry in items if isinstance(entry, tuple)}
        return tuple(items) if code == "e" else items

    def _basic(self, code: str) -> object:
        holder = _BASIC[code]()
        _check(self.lib.sd_bus_message_read_basic(self.message, code.encode(),
                                                  ctypes.byref(holder)), "read")
        value = holder.value
        if isinstance(value, bytes):
            return value.decode("utf-8", "surrogateescape")
        return bool(value) if code == "b" else value


_END = object()


class Client:
    """A connection to the system bus (``$DBUS_SYSTEM_BUS_ADDRESS`` when set), calling
    ``destination``'s methods. Nothing waits without a bound: connecting (the bus must
    complete the authentication and answer Hello) within ``timeout`` seconds, and each
    call within its own timeout (``None``: no bound)."""

    def __init__(self, destination: str, timeout: float | None = QUERY_TIMEOUT) -> None:
        self.destination = destination.encode()
        try:
            self.lib = _load()
        except OSError as err:
            raise BusError("", f"cannot load libsystemd ({err}): is systemd installed?"
                           ) from None
        self.bus = ctypes.c_void_p()
        address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", DEFAULT_ADDRESS)
        what = f"cannot connect to the system bus ({address})"
        _check(self.lib.sd_bus_open_system(ctypes.byref(self.bus)), what)
        try:
            self._wait_ready(what, timeout)
        except BusError:
            self.close()
            raise

    def _wait_ready(self, what: str, timeout: float | None) -> None:
        """Drive the connection until the bus has accepted it (sd-bus itself would wait for
        a bus that never completes the authentication for as long as it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while _check(self.lib.sd_bus_is_ready(self.bus), what) == 0:
            processed = self.lib.sd_bus_process(self.bus, None)
            if processed == -errno.EPERM:
                raise BusError("", f"{what}: the bus rejected the authentication")
            if _check(processed, what) > 0:
                continue
            if deadline is None:
                left = UINT64_MAX
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BusError("", f"{what}: no answer within {timeout:g} s")
                left = max(1, int(remaining * USEC))
            _check(self.lib.sd_bus_wait(self.bus, left), what)

    def close(self) -> None:
        if self.bus:
            self.lib.sd_bus_close_unref(self.bus)  # never waits: every call was answered
            self.bus = ctypes.c_void_p()

    def call(self, method: Method, path: str, *args: str | bool, interactive: bool = False,
             timeout: float | None = QUERY_TIMEOUT) -> list[object]:
        """``method`` on the object at ``path``; its results. ``interactive``: polkit may
        ask the user for a password; ``timeout``: seconds to wait for the answer (``None``:
        as long as it takes), then a :class:`BusError` named :data:`TIMED_OUT`."""
        message = ctypes.c_void_p()
        _check(self.lib.sd_bus_message_new_method_call(
            self.bus, ctypes.byref(message), self.destination, path.encode(),
            method.interface.encode(), method.name.encode()), method.name)
        reply = ctypes.c_void_p()
        try:
            self._append(message, method, args)
            if interactive:
                self.lib.sd_bus_message_set_allow_interactive_authorization(message, 1)
            error = _Error()
            usec = UINT64_MAX if timeout is None else max(1, int(timeout * USEC))
            result = self.lib.sd_bus_call(self.bus, message, usec, ctypes.byref(error),
                                          ctypes.byref(reply))
            if result == -errno.ETIMEDOUT:
                self.lib.sd_bus_error_free(ctypes.byref(error))
                raise BusError(TIMED_OUT, f"no answer within {timeout:g} s")
            if result < 0:
                raise self._failure(error, result)
            return _Reply(self.lib, reply.value or 0).values()
        finally:
            self.lib.sd_bus_message_unref(message)
            if reply:
                self.lib.sd_bus_message_unref(reply)

    def properties(self, path: str, interface: str,
                   timeout: float | None = QUERY_TIMEOUT) -> dict[str, object]:
        """Every property of ``interface`` at ``path`` (``GetAll``)."""
        [values] = self.call(GET_ALL, path, interface, timeout=timeout)
        assert isinstance(values, dict)
        return values

    def _append(self, message: ctypes.c_void_p, method: Method,
                args: tuple[str | bool, ...]) -> None:
        if len(args) != len(method.args):
            raise TypeError(f"{method}: {len(args)} arguments given")
        for code, value in zip(method.args, args, strict=True):
            holder: ctypes.c_char_p | ctypes.c_int
            if code == "s" and isinstance(value, str):
                holder = ctypes.c_char_p(value.encode("utf-8", "surrogateescape"))
                pointer = ctypes.cast(holder, ctypes.c_void_p)
            elif code == "b" and isinstance(value, bool):
                holder = ctypes.c_int(int(value))
                pointer = ctypes.cast(ctypes.byref(holder), ctypes.c_void_p)
            else:
                raise TypeError(f"{method}: cannot send {value!r} as {code!r}")
            _check(self.lib.sd_bus_message_append_basic(message, code.encode(), pointer),
                   method.name)

    def _failure(self, error: _Error, result: int) -> BusError:
        try:
            if error.name:
                return BusError(error.name.decode(), (error.message or b"").decode(
                    "utf-8", "replace"))
            return BusError("", os.strerror(-result))
        finally:
            self.lib.sd_bus_error_free(ctypes.byref(error))
