"""The objects the service exports with dbus-next: ``io.pmemd1.Manager`` at ``/io/pmemd1``
and one ``io.pmemd1.Region`` per configured region, thin over
:class:`~pmemd.service.operations.Operations`.

Every signature comes from :mod:`pmemd.service.api`; every error a method raises becomes
the named D-Bus error :mod:`pmemd.service.faults` maps it to; a mutating method asks
polkit (:mod:`pmemd.service.polkit`) before it does anything.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from dbus_next.constants import MessageFlag, PropertyAccess
from dbus_next.errors import DBusError
from dbus_next.message import Message
from dbus_next.service import ServiceInterface, dbus_property
from dbus_next.service import method as _dbus_method

from pmemd.errors import PmemdError
from pmemd.service import api
from pmemd.service.faults import error_name
from pmemd.service.polkit import Action, Caller

if TYPE_CHECKING:
    from pmemd.service.operations import Operations
    from pmemd.service.polkit import Authority
    from pmemd.service.views import ManagerView, RegionView

log = logging.getLogger(__name__)

# The method call being handled. A message handler sets it before dbus-next dispatches
# the call; the task dbus-next creates for an async method copies the context, so each
# method sees its own message (its sender and flags) even while others run.
CURRENT_CALL: contextvars.ContextVar[Message | None] = contextvars.ContextVar(
    "pmemd_current_call", default=None)

# An error's text is cut beyond this (characters): a reply of at most a few MiB.
MAX_ERROR_TEXT = 1 << 20
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
G = TypeVar("G", bound=Callable[..., Any])


def dbus_error(name: str, text: str) -> DBusError:
    """A D-Bus error reply (``name`` such as ``io.pmemd1.Error.Busy``) with a message."""
    return DBusError(name, text)  # type: ignore[no-untyped-call]


def current_caller() -> Caller:
    msg = CURRENT_CALL.get()
    if msg is None or msg.sender is None:
        raise dbus_error(api.ErrorName.ACCESS_DENIED, "unknown caller")
    interactive = bool(msg.flags & MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION)
    return Caller(msg.sender, interactive)


def split_signature(signature: str) -> list[str]:
    """A signature's complete types (``sa{sv}(ii)`` → ``s``, ``a{sv}``, ``(ii)``)."""
    types, start, depth = [], 0, 0
    for index, char in enumerate(signature):
        if char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
        if depth == 0 and char != "a":
            types.append(signature[start:index + 1])
            start = index + 1
    return types


def bounded(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """``text`` cut to about ``limit`` characters at a line's end, saying how much was cut:
    an error reply larger than the bus allows (32 MiB on the system bus) would make
    dbus-daemon disconnect the service, not the caller."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    kept = text[:cut if cut > 0 else limit]
    rest = text[len(kept):]
    return (f"{kept}\n… and {rest.count(chr(10)) + 1} more lines ({len(rest)} characters) "
            "not sent: run 'pmemd validate' on the file for all of it")


def dbus_method(member: api.Method, *names: str) -> Callable[[F], F]:
    """The D-Bus method ``member`` (its arguments named ``names``, in order).

    pmemd's errors become their named D-Bus errors (their text bounded); anything else is
    logged and reported as ``io.pmemd1.Error.Failed`` without a Python traceback.
    """
    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        async def call(self: _Interface, *args: Any) -> Any:
            with self.server.in_call():
                try:
                    return await fn(self, *args)
                except DBusError:
                    raise
                except PmemdError as err:
                    raise dbus_error(error_name(err), bounded(str(err))) from None
                except Exception as err:
                    log.exception("%s failed", fn.__name__)
                    raise dbus_error(api.ErrorName.FAILED, bounded(
                        f"internal error in {fn.__name__}: {err}")) from None
        assert fn.__name__ == member.name, (fn.__name__, member)
        fn.__annotations__ = {**dict(zip(names, split_signature(member.args), strict=True)),
                              "return": member.result}
        return cast(F, _dbus_method()(call))
    return decorate


def dbus_getter(properties: Mapping[str, str]) -> Callable[[G], G]:
    """A read-only D-Bus property of ``properties`` (api's table), named for the method."""
    def decorate(fn: G) -> G:
        fn.__annotations__ = {"return": properties[fn.__name__]}
        return cast(G, dbus_property(access=PropertyAccess.READ)(fn))
    return decorate


manager_property = dbus_getter(api.MANAGER_PROPERTIES)
region_property = dbus_getter(api.REGION_PROPERTIES)


class Host(Protocol):
    """What the objects need of the server that exports them."""

    ops: Operations
    authority: Authority
    manager_view: ManagerView | None
    region_views: dict[str, RegionView]

    def in_call(self) -> AbstractContextManager[None]: ...


class _Interface(ServiceInterface):
    server: Host


class ManagerInterface(_Interface):
    def __init__(self, server: Host) -> None:
        super().__init__(api.MANAGER_INTERFACE)
        self.server = server

    @property
    def view(self) -> ManagerView:
        view = self.server.manager_view
        assert view is not None, "read before the first refresh"
        return view

    @manager_property
    def Version(self) -> str:
        return self.view.Version

    @manager_property
    def State(self) -> str:
        return self.view.State

    @manager_property
    def RebootRequired(self) -> bool:
        return self.view.RebootRequired

    @manager_property
    def Bootloader(self) -> str:
        return self.view.Bootloader

    @manager_property
    def BootloaderReason(self) -> str:
        return self.view.BootloaderReason

    @manager_property
    def ConfigPath(self) -> str:
        return self.view.ConfigPath

    @manager_property
    def CurrentMemmap(self) -> list[str]:
        return self.view.CurrentMemmap

    @manager_property
    def DesiredMemmap(self) -> list[str]:
        return self.view.DesiredMemmap

    @manager_property
    def Warnings(self) -> list[list[object]]:
        return self.view.Warnings

    @manager_property
    def Problems(self) -> list[list[object]]:
        return self.view.Problems

    @manager_property
    def ReadError(self) -> str:
        return self.view.ReadError

    @manager_property
    def Trial(self) -> str:
        return self.view.Trial

    @manager_property
    def TrialReason(self) -> str:
        return self.view.TrialReason

    @manager_property
    def KernelImage(self) -> list[list[int]]:
        return self.view.KernelImage

    @dbus_method(api.RELOAD)
    async def Reload(self) -> None:
        # It makes root write the generator's cache: a change, asked of polkit like one.
        await self.server.authority.check(current_caller(), Action.MANAGE)
        await self.server.ops.reload()

    @dbus_method(api.VALIDATE, "yaml")
    async def Validate(self, yaml: str) -> list[list[object]]:
        return [w.wire() for w in await self.server.ops.validate(yaml)]

    @dbus_method(api.GET_PLAN)
    async def GetPlan(self) -> str:
        return await self.server.ops.plan_json()

    @dbus_method(api.PLAN_CONFIG, "yaml")
    async def PlanConfig(self, yaml: str) -> str:
        return await self.server.ops.plan_config(yaml)

    @dbus_method(api.GET_MEMORY_MAP)
    async def GetMemoryMap(self) -> list[list[list[object]]]:
        return await self.server.ops.memory_map()

    @dbus_method(api.LIST_REGIONS)
    async def ListRegions(self) -> list[list[object]]:
        await self.server.ops.fresh()
        return [api.RegionRow(name=v.Name, path=api.region_path(v.Name), offset=v.Offset,
                              size=v.Size, device=v.Device, mountpoint=v.Mountpoint,
                              fstype=v.FilesystemType, state=v.State).wire()
                for v in self.server.region_views.values()]

    @dbus_method(api.SET_CONFIG, "yaml", "apply")
    async def SetConfig(self, yaml: str, apply: bool) -> str:
        caller = current_caller()
        await self.server.authority.check(caller, Action.MANAGE)
        return await self.server.ops.set_config(yaml, apply=apply, caller=caller)

    @dbus_method(api.APPLY, "dry_run")
    async def Apply(self, dry_run: bool) -> list[object]:
        caller = current_caller()
        if not dry_run:
            await self.server.authority.check(caller, Action.MANAGE)
        state, report = await self.server.ops.apply(dry_run=dry_run, caller=caller)
        return [state, report]

    @dbus_method(api.RETRY_TRIAL)
    async def RetryTrial(self) -> list[object]:
        caller = current_caller()
        await self.server.authority.check(caller, Action.MANAGE)
        state, report = await self.server.ops.retry_trial(caller=caller)
        return [state, report]

    @dbus_method(api.ABORT_TRIAL)
    async def AbortTrial(self) -> str:
        caller = current_caller()
        await self.server.authority.check(caller, Action.MANAGE)
        return await self.server.ops.abort_trial(caller=caller)


class RegionInterface(_Interface):
    def __init__(self, server: Host, view: RegionView) -> None:
        super().__init__(api.REGION_INTERFACE)  # sets .name: the interface's name
        self.server = server
        self.region = view.Name
        self.view = view

    @region_property
    def Name(self) -> str:
        return self.view.Name

    @region_property
    def Size(self) -> int:
        return self.view.Size

    @region_property
    def Offset(self) -> int:
        return self.view.Offset

    @region_property
    def Memmap(self) -> str:
        return self.view.Memmap

    @region_property
    def Device(self) -> str:
        return self.view.Device

    @region_property
    def Mountpoint(self) -> str:
        return self.view.Mountpoint

    @region_property
    def FilesystemType(self) -> str:
        return self.view.FilesystemType

    @region_property
    def State(self) -> str:
        return self.view.State

    @region_property
    def StateReason(self) -> str:
        return self.view.StateReason

    @region_property
    def Dax(self) -> bool:
        return self.view.Dax

    @region_property
    def Mode(self) -> str:
        return self.view.Mode

    @region_property
    def PageMap(self) -> str:
        return self.view.PageMap

    @region_property
    def Align(self) -> int:
        return self.view.Align

    @region_property
    def CharacterDevice(self) -> str:
        return self.view.CharacterDevice

    @dbus_method(api.MOUNT)
    async def Mount(self) -> None:
        caller = current_caller()
        await self.server.authority.check(caller, Action.MOUNT)
        await self.server.ops.mount(self.region, mount=True, caller=caller)

    @dbus_method(api.UNMOUNT)
    async def Unmount(self) -> None:
        caller = current_caller()
        await self.server.authority.check(caller, Action.MOUNT)
        await self.server.ops.mount(self.region, mount=False, caller=caller)

    @dbus_method(api.FORMAT, "force")
    async def Format(self, force: bool) -> None:
        caller = current_caller()
        await self.server.authority.check(caller, Action.FORMAT)
        await self.server.ops.format(self.region, force=force, caller=caller)
