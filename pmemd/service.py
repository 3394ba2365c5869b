"""The D-Bus service ``io.pmemd1``: thin objects over the functions the CLI calls.

``pmemd serve`` owns ``io.pmemd1`` on the system bus and exports

* ``/io/pmemd1`` with ``io.pmemd1.Manager``: the machine's pmem state as typed properties
  (``PropertiesChanged`` when they change) and methods to validate, plan, apply and
  replace the config;
* ``/io/pmemd1/region/<name>`` with ``io.pmemd1.Region`` for each configured region.
  Region names may contain ``-``, which object paths forbid: a path element is escaped
  the way sd-bus does (``sd_bus_path_encode``): every byte outside ``[A-Za-z0-9]``, and a
  leading digit, becomes ``_`` and two lower-case hex digits — ``fast-log`` is
  ``fast_2dlog``, ``0cache`` is ``_30cache``.

Everything the service knows is re-read from the machine (config, memory map, command
line, devices, mounts): it keeps no state of its own, so it exits after an idle time and
bus activation starts it again when someone calls.

Mutating methods ask :mod:`pmemd.polkit` first; errors are named D-Bus errors carrying the
``dbus_name`` of :mod:`pmemd.errors` classes (``io.pmemd1.Error.InvalidConfig`` …) and a
message for humans.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import select
import signal
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, cast

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import (
    BusType,
    MessageFlag,
    MessageType,
    NameFlag,
    PropertyAccess,
    RequestNameReply,
)
from dbus_next.errors import DBusError
from dbus_next.message import Message
from dbus_next.service import ServiceInterface, dbus_property
from dbus_next.service import method as _dbus_method

from pmemd import __version__
from pmemd.atomic import Transaction, remove_durably
from pmemd.bootloader.stamp import remove_stamp
from pmemd.config import parse_config
from pmemd.errors import ConfigError, MachineError, PmemdError, Problem
from pmemd.facts import read_config, read_facts
from pmemd.filesystem import make_region_filesystem
from pmemd.gencache import refresh_generator_cache
from pmemd.history import read_history
from pmemd.machine import CONFIG_PATH, Machine
from pmemd.memmap import memmap_args
from pmemd.model import (
    Config,
    DeviceState,
    E820Entry,
    MachineFacts,
    OnBoot,
    PlacedRegion,
    Plan,
    PlanState,
)
from pmemd.plan import plan as plan_config
from pmemd.polkit import Action, Authority, Caller
from pmemd.reconcile import BootView, plan_boot, read_boot_view, reconcile
from pmemd.report import dump_json, plan_with_boot_document, render_reconcile_text
from pmemd.runner import Runner
from pmemd.systemctl import Systemd
from pmemd.units import region_unit_names

log = logging.getLogger(__name__)

BUS_NAME = "io.pmemd1"
MANAGER_PATH = "/io/pmemd1"
REGION_PATH = "/io/pmemd1/region"
MANAGER_INTERFACE = "io.pmemd1.Manager"
REGION_INTERFACE = "io.pmemd1.Region"
DEFAULT_IDLE_TIMEOUT = 60.0  # seconds without a call before the service exits
VALIDATE_SOURCE = "<input>"  # the file name Validate()'s errors locate lines in


# --- errors only the service raises -------------------------------------------------------


class BusyError(PmemdError):
    dbus_name = "io.pmemd1.Error.Busy"


class NotFoundError(PmemdError):
    dbus_name = "io.pmemd1.Error.NotFound"


class NotSupportedError(PmemdError):
    dbus_name = "io.pmemd1.Error.NotSupported"


class AppliedHalfError(PmemdError):
    """SetConfig(apply=true) wrote the config, then Apply failed: the caller must know
    both; the D-Bus name is the failure's."""

    def __init__(self, message: str, dbus_name: str) -> None:
        super().__init__(message)
        self.dbus_name = dbus_name


# --- object paths (pure) ------------------------------------------------------------------


def escape_path_label(label: str) -> str:
    """One object-path element for ``label``, escaped like sd-bus's ``bus_label_escape``."""
    if not label:
        return "_"
    out = []
    for index, char in enumerate(label):
        if char.isascii() and (char.isalpha() or (index > 0 and char.isdigit())):
            out.append(char)
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode("utf-8"))
    return "".join(out)


def unescape_path_label(element: str) -> str:
    """The label an escaped path element stands for (the inverse of the above)."""
    if element == "_":
        return ""
    raw = bytearray()
    index = 0
    while index < len(element):
        if element[index] == "_":
            raw.append(int(element[index + 1:index + 3], 16))
            index += 3
        else:
            raw.extend(element[index].encode("ascii"))
            index += 1
    return raw.decode("utf-8")


def region_path(name: str) -> str:
    return f"{REGION_PATH}/{escape_path_label(name)}"


# --- what the service shows (pure, from what was read) ------------------------------------


@dataclass(frozen=True)
class Status:
    """One reading of the machine, by the functions ``pmemd plan`` calls."""

    config_path: str
    config: Config | None
    problems: tuple[Problem, ...]  # why the config is invalid (parse or plan problems)
    facts: MachineFacts | None
    machine_error: str | None  # why the machine could not be read
    plan: Plan | None = None
    boot: BootView | None = None
    guard: str | None = None  # reconcile's degraded marker: the reboot guard stopped


def read_status(machine: Machine, config_path: Path | None) -> Status:
    shown = str(config_path) if config_path is not None else machine.display(CONFIG_PATH)
    config: Config | None = None
    partial: Config | None = None
    problems: tuple[Problem, ...] = ()
    try:
        config = read_config(machine, config_path)
    except ConfigError as err:
        problems, partial = err.problems, err.partial
    try:
        facts = replace(read_facts(machine, devices=True), history=read_history(machine))
        if config is None:
            # What needs no valid config is still shown: the running command line (facts)
            # and the bootloader (the one the usable part of the config names, else auto).
            try:
                seen: BootView | None = read_boot_view(machine, partial)
            except MachineError:
                seen = None
            return Status(shown, None, problems, facts, None, boot=seen)
        boot = read_boot_view(machine, config)  # judged against the bootloader's next boot
        result = plan_boot(config, facts, boot.owned, boot.target)
        guard = machine.read_text(machine.runtime_degraded)
    except MachineError as err:
        return Status(shown, config, problems, None, str(err))
    return Status(shown, config, result.problems, facts, None, result, boot,
                  guard.strip() if guard else None)


def overall_state(status: Status) -> PlanState:
    if status.config is None or status.problems:
        return PlanState.INVALID_CONFIG
    if status.plan is None or status.machine_error is not None or status.guard:
        return PlanState.DEGRADED
    return status.plan.state


# D-Bus values: lists for arrays and structs (what dbus-next marshals).
WarningTuple = list[str]  # (code, region, message)
ProblemTuple = list[Any]  # (message, key, file, line, column)


@dataclass(frozen=True)
class ManagerView:
    """``io.pmemd1.Manager``'s properties; field names are the D-Bus property names."""

    Version: str
    State: str
    RebootRequired: bool
    Bootloader: str
    BootloaderReason: str
    ConfigPath: str
    CurrentMemmap: list[str]
    DesiredMemmap: list[str]
    Warnings: list[WarningTuple]
    Problems: list[ProblemTuple]
    ReadError: str


@dataclass(frozen=True)
class RegionView:
    """``io.pmemd1.Region``'s properties."""

    Name: str
    Size: int
    Offset: int
    Memmap: str
    Device: str
    Mountpoint: str
    FilesystemType: str
    State: str
    StateReason: str
    Dax: bool


def problem_tuple(problem: Problem) -> ProblemTuple:
    loc = problem.location
    return [problem.message, problem.key, loc.path if loc else "",
            loc.line if loc else 0, loc.column if loc else 0]


def manager_view(status: Status) -> ManagerView:
    result, boot = status.plan, status.boot
    warnings = [[w.code, w.region or "", w.message] for w in result.warnings] if result else []
    if status.guard:
        warnings.append(["reboot-guard", "", status.guard])
    backend = boot.detection.backend if boot is not None else None
    return ManagerView(
        Version=__version__,
        State=overall_state(status).value,
        RebootRequired=bool(result and result.reboot_required),
        Bootloader=backend.kind.value if backend is not None else "",
        BootloaderReason=boot.detection.reason if boot is not None else "",
        ConfigPath=status.config_path,
        CurrentMemmap=list(result.running_args) if result else running_memmap(status.facts),
        DesiredMemmap=list(result.desired_args) if result else [],
        Warnings=warnings,
        Problems=[problem_tuple(p) for p in status.problems],
        ReadError=status.machine_error or "",
    )


def running_memmap(facts: MachineFacts | None) -> list[str]:
    """This boot's memmap= options, as the plan lists them (``running_args``)."""
    return [a.text for a in memmap_args(facts.cmdline)] if facts is not None else []


def region_views(status: Status) -> dict[str, RegionView]:
    if status.plan is None:
        return {}
    found = {d.region: d for d in status.plan.devices}
    views = {}
    for placed in status.plan.regions:
        region = placed.region
        fs = region.filesystem
        device = found.get(region.name)
        dev = device.device if device is not None else None
        ready = device is not None and device.state is DeviceState.READY
        views[region.name] = RegionView(
            Name=region.name,
            Size=placed.range.size,
            Offset=placed.range.start,
            Memmap=placed.argument,
            Device=f"/dev/{dev.name}" if dev is not None else "",
            Mountpoint=fs.mountpoint if fs is not None else "",
            FilesystemType=fs.type.value if fs is not None else "",
            State=device.state.value if device is not None else DeviceState.UNKNOWN.value,
            StateReason=device.reason if device is not None else "devices were not read",
            Dax=bool(ready and dev is not None and dev.dax),
        )
    return views


def changed_properties(old: object | None, new: object) -> dict[str, Any]:
    """The properties (dataclass fields) whose values differ between two views."""
    now: dict[str, Any] = asdict(new)  # type: ignore[call-overload]
    if old is None:
        return now
    before: dict[str, Any] = asdict(old)  # type: ignore[call-overload]
    return {name: value for name, value in now.items() if before.get(name) != value}


def _entries(entries: tuple[E820Entry, ...] | None) -> list[list[Any]]:
    return [[e.range.start, e.range.size, e.kind.value, e.label] for e in entries or ()]


# --- dbus-next glue -----------------------------------------------------------------------

# The method call being handled. A message handler sets it before dbus-next dispatches
# the call; the task dbus-next creates for an async method copies the context, so each
# method sees its own message (its sender and flags) even while others run.
_CURRENT_CALL: contextvars.ContextVar[Message | None] = contextvars.ContextVar(
    "pmemd_current_call", default=None)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
G = TypeVar("G", bound=Callable[..., Any])
T = TypeVar("T")


def dbus_error(name: str, text: str) -> DBusError:
    """A D-Bus error reply (``name`` such as ``io.pmemd1.Error.Busy``) with a message."""
    return DBusError(name, text)  # type: ignore[no-untyped-call]


def current_caller() -> Caller:
    msg = _CURRENT_CALL.get()
    if msg is None or msg.sender is None:
        raise dbus_error("org.freedesktop.DBus.Error.AccessDenied", "unknown caller")
    interactive = bool(msg.flags & MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION)
    return Caller(msg.sender, interactive)


def dbus_method(returns: str = "", **params: str) -> Callable[[F], F]:
    """A D-Bus method with explicit signatures (``params`` by argument name).

    pmemd's errors become their named D-Bus errors; anything else is logged and reported
    as ``io.pmemd1.Error.Failed`` without a Python traceback.
    """
    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        async def call(self: _Interface, *args: Any) -> Any:
            with self.service.in_call():
                try:
                    return await fn(self, *args)
                except DBusError:
                    raise
                except PmemdError as err:
                    raise dbus_error(err.dbus_name, str(err)) from None
                except Exception as err:
                    log.exception("%s failed", fn.__name__)
                    raise dbus_error(PmemdError.dbus_name,
                                     f"internal error in {fn.__name__}: {err}") from None
        fn.__annotations__ = {**params, "return": returns}
        return cast(F, _dbus_method()(call))
    return decorate


def dbus_getter(signature: str) -> Callable[[G], G]:
    """A read-only D-Bus property whose value is the view's field of the same name."""
    def decorate(fn: G) -> G:
        fn.__annotations__ = {"return": signature}
        return cast(G, dbus_property(access=PropertyAccess.READ)(fn))
    return decorate


class _Interface(ServiceInterface):
    service: Service


# --- the objects --------------------------------------------------------------------------


class ManagerInterface(_Interface):
    def __init__(self, service: Service) -> None:
        super().__init__(MANAGER_INTERFACE)
        self.service = service

    @property
    def view(self) -> ManagerView:
        view = self.service.manager_view
        assert view is not None, "read before the first refresh"
        return view

    @dbus_getter("s")
    def Version(self) -> str:
        return self.view.Version

    @dbus_getter("s")
    def State(self) -> str:
        return self.view.State

    @dbus_getter("b")
    def RebootRequired(self) -> bool:
        return self.view.RebootRequired

    @dbus_getter("s")
    def Bootloader(self) -> str:
        return self.view.Bootloader

    @dbus_getter("s")
    def BootloaderReason(self) -> str:
        return self.view.BootloaderReason

    @dbus_getter("s")
    def ConfigPath(self) -> str:
        return self.view.ConfigPath

    @dbus_getter("as")
    def CurrentMemmap(self) -> list[str]:
        return self.view.CurrentMemmap

    @dbus_getter("as")
    def DesiredMemmap(self) -> list[str]:
        return self.view.DesiredMemmap

    @dbus_getter("a(sss)")
    def Warnings(self) -> list[WarningTuple]:
        return self.view.Warnings

    @dbus_getter("a(sssuu)")
    def Problems(self) -> list[ProblemTuple]:
        return self.view.Problems

    @dbus_getter("s")
    def ReadError(self) -> str:
        return self.view.ReadError

    @dbus_method()
    async def Reload(self) -> None:
        self.service.refresh()
        refresh_generator_cache(self.service.machine)  # the next boot's generator replays it

    @dbus_method("a(sss)", yaml="s")
    async def Validate(self, yaml: str) -> list[WarningTuple]:
        return self.service.validate(yaml)

    @dbus_method("s")
    async def GetPlan(self) -> str:
        return self.service.plan_json()

    @dbus_method("a(ttss)a(ttss)")
    async def GetMemoryMap(self) -> list[list[list[Any]]]:
        facts = self.service.facts()
        return [_entries(facts.memory.firmware), _entries(facts.memory.edited)]

    @dbus_method("a(sottssss)")
    async def ListRegions(self) -> list[list[Any]]:
        return [[v.Name, region_path(v.Name), v.Offset, v.Size, v.Device, v.Mountpoint,
                 v.FilesystemType, v.State] for v in self.service.region_views.values()]

    @dbus_method("s", yaml="s", apply="b")
    async def SetConfig(self, yaml: str, apply: bool) -> str:
        caller = current_caller()
        await self.service.authority.check(caller, Action.MANAGE)
        return await self.service.set_config(yaml, apply=apply, caller=caller)

    @dbus_method("sas", dry_run="b")
    async def Apply(self, dry_run: bool) -> list[Any]:
        caller = current_caller()
        if not dry_run:
            await self.service.authority.check(caller, Action.MANAGE)
        return await self.service.apply(dry_run=dry_run, caller=caller)


class RegionInterface(_Interface):
    def __init__(self, service: Service, view: RegionView) -> None:
        super().__init__(REGION_INTERFACE)  # sets .name: the interface's name
        self.service = service
        self.region = view.Name
        self.view = view

    @dbus_getter("s")
    def Name(self) -> str:
        return self.view.Name

    @dbus_getter("t")
    def Size(self) -> int:
        return self.view.Size

    @dbus_getter("t")
    def Offset(self) -> int:
        return self.view.Offset

    @dbus_getter("s")
    def Memmap(self) -> str:
        return self.view.Memmap

    @dbus_getter("s")
    def Device(self) -> str:
        return self.view.Device

    @dbus_getter("s")
    def Mountpoint(self) -> str:
        return self.view.Mountpoint

    @dbus_getter("s")
    def FilesystemType(self) -> str:
        return self.view.FilesystemType

    @dbus_getter("s")
    def State(self) -> str:
        return self.view.State

    @dbus_getter("s")
    def StateReason(self) -> str:
        return self.view.StateReason

    @dbus_getter("b")
    def Dax(self) -> bool:
        return self.view.Dax

    @dbus_method()
    async def Mount(self) -> None:
        caller = current_caller()
        await self.service.authority.check(caller, Action.MOUNT)
        await self.service.mount(self.region, mount=True, caller=caller)

    @dbus_method()
    async def Unmount(self) -> None:
        caller = current_caller()
        await self.service.authority.check(caller, Action.MOUNT)
        await self.service.mount(self.region, mount=False, caller=caller)

    @dbus_method(force="b")
    async def Format(self, force: bool) -> None:
        caller = current_caller()
        await self.service.authority.check(caller, Action.FORMAT)
        await self.service.format(self.region, force=force, caller=caller)


# --- the service --------------------------------------------------------------------------


FileStamp = tuple[int, int, int] | None


def _stamp(paths: tuple[str, ...]) -> tuple[FileStamp, ...]:
    """Cheap change detection for the files a status is read from (mtime, size, inode)."""
    out: list[FileStamp] = []
    for path in paths:
        try:
            st = os.stat(path)  # noqa: PTH116 (every call: no Path objects)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


class Service:
    """The running service: the bus, the exported objects and the last reading."""

    def __init__(self, machine: Machine, bus: MessageBus, config_path: Path | None = None,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self.machine = machine
        self.bus = bus
        self.config_path = config_path
        self.idle_timeout = idle_timeout
        self.authority = Authority(bus)
        self.systemd = Systemd(live=machine.root == Path("/"))
        self.manager = ManagerInterface(self)
        self.status: Status | None = None
        self.manager_view: ManagerView | None = None
        self.region_views: dict[str, RegionView] = {}
        self._regions: dict[str, RegionInterface] = {}
        self._stamp: tuple[FileStamp, ...] = ()
        # Files whose change means the status must be read again (checked at every call).
        self._watched = tuple(str(p) for p in (
            self.config_file, machine.cmdline, machine.state_dir, machine.runtime_dir,
            machine.sys_block, machine.mountinfo))
        self._plan_json: str | None = None  # GetPlan's answer for the current status
        self._calls = 0
        self._last_call = 0.0
        self._operation: str | None = None
        self._stop = asyncio.Event()
        self._quiet = asyncio.Event()
        self._quiet.set()
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="pmemd-op")

    # --- reading --------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.config_path if self.config_path is not None else self.machine.config

    def refresh(self) -> None:
        """Read the machine again; export or drop region objects; emit PropertiesChanged."""
        self._stamp = _stamp(self._watched)
        status = read_status(self.machine, self.config_path)
        self._plan_json = None
        view = manager_view(status)
        changed = changed_properties(self.manager_view, view)
        self.status, self.manager_view = status, view
        if changed:
            self.manager.emit_properties_changed(changed)
        self.region_views = region_views(status)
        for name in [n for n in self._regions if n not in self.region_views]:
            self.bus.unexport(region_path(name), self._regions.pop(name))
        for name, region_view in self.region_views.items():
            region = self._regions.get(name)
            if region is None:
                self._regions[name] = RegionInterface(self, region_view)
                self.bus.export(region_path(name), self._regions[name])
            elif changed := changed_properties(region.view, region_view):
                region.view = region_view
                region.emit_properties_changed(changed)

    def refresh_if_changed(self) -> None:
        if _stamp(self._watched) != self._stamp:
            self.refresh()

    def current(self) -> Status:
        if self.status is None:
            self.refresh()
        assert self.status is not None
        return self.status

    def facts(self) -> MachineFacts:
        status = self.current()
        if status.facts is None:
            raise MachineError(status.machine_error or "the machine could not be read")
        return status.facts

    def plan_json(self) -> str:
        """The document ``pmemd plan --json`` prints (made once per reading)."""
        status = self.current()
        if status.plan is None:
            if status.config is None:
                raise ConfigError(status.problems)
            raise MachineError(status.machine_error or "the machine could not be read")
        if self._plan_json is None:
            assert status.boot is not None
            self._plan_json = dump_json(plan_with_boot_document(status.plan, status.boot))
        return self._plan_json

    def validate(self, yaml: str) -> list[WarningTuple]:
        """Like ``pmemd validate``: the text must parse and the plan must have no problem;
        when the machine cannot be read, only the text is checked, and that is said."""
        config = parse_config(yaml, VALIDATE_SOURCE)
        status = self.current()
        if status.facts is None:
            return [["machine-checks-skipped", "",
                     f"the text is valid; machine checks skipped: {status.machine_error}"]]
        result = plan_config(config, status.facts)
        if result.problems:
            raise ConfigError(result.problems)
        return [[w.code, w.region or "", w.message] for w in result.warnings]

    # --- changing -------------------------------------------------------------------

    @contextlib.contextmanager
    def in_call(self) -> Iterator[None]:
        """Count a method call in progress: the service does not exit during one."""
        self._calls += 1
        self._quiet.clear()
        try:
            yield
        finally:
            self._calls -= 1
            self._last_call = asyncio.get_running_loop().time()
            if self._calls == 0:
                self._quiet.set()

    async def _exclusive(self, what: str, caller: Caller, work: Callable[[], T]) -> T:
        """Run ``work`` in the worker thread; one change at a time, never queued silently."""
        if self._operation is not None:
            raise BusyError(f"{self._operation} is in progress; try again when it finishes")
        self._operation = f"{what} (requested by {caller.sender})"
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, work)
        finally:
            self._operation = None
            self.refresh()

    async def set_config(self, yaml: str, *, apply: bool, caller: Caller) -> str:
        """Validate ``yaml`` like ``pmemd validate``, then replace the config atomically
        (the old one kept as ``pmemd.yaml.pmemd-bak``) and let systemd re-run the
        generator; on any failure the old file is back and nothing else changed."""
        target = self.config_file
        shown = str(target) if self.config_path is not None else self.machine.display(
            CONFIG_PATH)

        def write() -> None:
            config = parse_config(yaml, shown)
            result = plan_config(config, read_facts(self.machine))
            if result.problems:
                raise ConfigError(result.problems)
            transaction = Transaction()
            transaction.write(target, yaml, mode=0o644)
            refresh_generator_cache(self.machine)  # before the reload that runs the generator
            try:
                self.systemd.daemon_reload()
            except PmemdError:
                transaction.rollback()
                raise
            log.info("%s: replaced for %s (%d regions)", shown, caller.sender,
                     len(config.regions))

        await self._exclusive("SetConfig", caller, write)
        if apply:
            try:
                await self.apply(dry_run=False, caller=caller)
            except PmemdError as err:
                raise AppliedHalfError(f"{shown} was replaced, but applying it failed: {err}",
                                       err.dbus_name) from None
        assert self.manager_view is not None
        return self.manager_view.State

    async def apply(self, *, dry_run: bool, caller: Caller) -> list[Any]:
        """``pmemd reconcile [--dry-run]``: the same function, the same report."""
        def work() -> list[Any]:
            outcome = reconcile(self.machine, Runner(dry_run=dry_run),
                                config_path=self.config_path, dry_run=dry_run)
            if not dry_run:
                remove_stamp(self.machine)  # the boot-time reconcile checks everything again
            return [outcome.state.value, render_reconcile_text(outcome).splitlines()]

        if dry_run:  # changes nothing: not exclusive, but still off the bus's thread
            return await asyncio.get_running_loop().run_in_executor(None, work)
        return await self._exclusive("Apply", caller, work)

    def _region(self, name: str) -> tuple[Config, PlacedRegion]:
        status = self.current()
        placed = next((p for p in status.plan.regions if p.region.name == name), None) \
            if status.plan is not None else None
        if status.config is None or placed is None:
            raise NotFoundError(f"region {name!r} is not in the config any more")
        return status.config, placed

    def _mount_unit(self, name: str) -> str:
        _config, placed = self._region(name)
        if placed.region.filesystem is None:
            raise NotSupportedError(f"region {name!r} has no filesystem in the config: "
                                    "there is nothing to mount")
        return region_unit_names(placed.region, placed.range).mount

    async def mount(self, name: str, *, mount: bool, caller: Caller) -> None:
        """Start or stop the region's mount unit (the generator wrote it from the config)."""
        unit = self._mount_unit(name)
        work = functools.partial(self.systemd.start if mount else self.systemd.stop, unit)
        await self._exclusive("Mount" if mount else "Unmount", caller, work)

    async def format(self, name: str, *, force: bool, caller: Caller) -> None:
        """A fresh filesystem on the region's device, by the function the make-filesystem
        unit runs (device proven by address, size and number; never in use), with the
        region forced to ``on-boot: recreate``. Mounted: refused unless ``force``, which
        stops the mount unit first and starts it again after."""
        config, placed = self._region(name)
        fs = placed.region.filesystem
        if fs is None:
            raise NotSupportedError(f"region {name!r} has no filesystem in the config")
        status = self.current()
        devices = {d.region: d for d in status.plan.devices} if status.plan else {}
        found = devices.get(name)
        mounted = found is not None and found.mount is not None
        if mounted and not force:
            raise BusyError(f"region {name!r} is mounted at {fs.mountpoint}; unmount it "
                            "first, or format with force (it is unmounted and mounted again)")
        unit = region_unit_names(placed.region, placed.range).mount
        recreate = replace(config, regions=tuple(
            replace(r, filesystem=replace(fs, on_boot=OnBoot.RECREATE))
            if r.name == name else r for r in config.regions))

        def work() -> None:
            if mounted:
                self.systemd.stop(unit)
            remove_durably(self.machine.filesystems_made / name)  # not "made this boot"
            outcome = make_region_filesystem(self.machine, recreate, name, Runner())
            log.info("%s (for %s)", outcome.message(), caller.sender)
            for warning in outcome.warnings:
                log.warning("%s", warning)
            if mounted:
                self.systemd.start(unit)

        await self._exclusive("Format", caller, work)

    # --- running --------------------------------------------------------------------

    def _on_message(self, msg: Message) -> bool:
        """Runs before dbus-next dispatches a message; never handles it itself."""
        if msg.message_type is MessageType.METHOD_CALL:
            _CURRENT_CALL.set(msg)
            self._last_call = asyncio.get_running_loop().time()
            self.refresh_if_changed()
        return False

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        left = self._last_call + self.idle_timeout - loop.time()
        if self._calls or left > 0:
            loop.call_later(max(left, 0.05), self._check_idle)
        else:
            self._stop.set()

    def _watch_mounts(self) -> Callable[[], None]:
        """Refresh when the mount table changes (the kernel flags mountinfo with POLLPRI)."""
        if not self.systemd.live:
            return lambda: None
        loop = asyncio.get_running_loop()
        fd = os.open(self.machine.mountinfo, os.O_RDONLY | os.O_CLOEXEC)
        watch = select.epoll()
        watch.register(fd, select.EPOLLPRI | select.EPOLLERR)

        def changed() -> None:
            watch.poll(0)
            self.refresh()

        loop.add_reader(watch.fileno(), changed)

        def close() -> None:
            loop.remove_reader(watch.fileno())
            watch.close()
            os.close(fd)
        return close

    async def run(self) -> None:
        """Export the objects, own the name, answer until idle, stopped or disconnected."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):  # before anyone can know we run
            loop.add_signal_handler(signum, self._stop.set)
        self.bus.add_message_handler(self._on_message)
        self.refresh()
        self.bus.export(MANAGER_PATH, self.manager)
        try:
            reply = await self.bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE)
        except DBusError as err:  # the bus policy: only root may own it
            raise MachineError(f"cannot own {BUS_NAME}: {err.text}") from None
        if reply is not RequestNameReply.PRIMARY_OWNER:
            raise MachineError(f"cannot own {BUS_NAME} ({reply.name.lower()}): "
                               "another process owns it")
        unwatch = self._watch_mounts()
        self._last_call = loop.time()
        if self.idle_timeout > 0:
            loop.call_later(self.idle_timeout, self._check_idle)
        log.info("serving %s (exit after %gs idle)", BUS_NAME, self.idle_timeout)
        stop = asyncio.ensure_future(self._stop.wait())
        lost = asyncio.ensure_future(
            self.bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        await asyncio.wait([stop, lost], return_when=asyncio.FIRST_COMPLETED)
        unwatch()
        if lost.done():
            stop.cancel()
            raise MachineError("lost the connection to the bus")
        # Give the name up first: calls that reach the bus from now on start a new
        # instance; calls already routed here arrive before the reply and are answered.
        await self.bus.release_name(BUS_NAME)
        await self._quiet.wait()
        self.bus.disconnect()  # type: ignore[no-untyped-call]
        lost.cancel()
        self._worker.shutdown(wait=True)
        log.info("exiting")


class _SentErrorFilter(logging.Filter):
    """dbus-next 0.2.3 sends a ``DBusError`` raised while handling a call as the error reply,
    then lets it escape (``SendReply.__exit__`` drops its own ``True``): asyncio and
    dbus-next would log each refused or invalid call as a crash. The caller got its error;
    these records are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("got unexpected error processing a message")
                    and "dbus_next.errors.DBusError" in text)


def _drop_sent_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if not isinstance(context.get("exception"), DBusError):
        loop.default_exception_handler(context)


async def _serve(machine: Machine, config_path: Path | None, address: str | None,
                 idle_timeout: float) -> None:
    try:
        if address is not None:
            bus = await MessageBus(bus_address=address).connect()
        else:
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    except (OSError, ValueError) as err:
        where = address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "the system bus")
        raise MachineError(f"cannot connect to {where}: {err}") from None
    asyncio.get_running_loop().set_exception_handler(_drop_sent_errors)
    logging.getLogger().addFilter(_SentErrorFilter())
    service = Service(machine, bus, config_path, idle_timeout)
    await service.run()


def serve(machine: Machine, config_path: Path | None = None, address: str | None = None,
          idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> int:
    """``pmemd serve``: run the service until idle (exit status 0)."""
    asyncio.run(_serve(machine, config_path, address, idle_timeout))
    return 0


