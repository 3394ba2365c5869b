"""``pmemd serve``: the D-Bus service ``io.pmemd1`` on the system bus.

It exports ``/io/pmemd1`` (``io.pmemd1.Manager``) and one ``/io/pmemd1/region/<name>``
(``io.pmemd1.Region``) per configured region (:mod:`pmemd.service.objects`), publishes
every new reading of the machine as ``PropertiesChanged`` (and regions appearing or going),
reads again when the files it came from or the mount table change, and exits after an
idle time: bus activation starts it again when someone calls, and nothing is lost, since
everything it knows is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import BusType, MessageType, NameFlag, RequestNameReply
from dbus_next.errors import DBusError
from dbus_next.message import Message

from pmemd.errors import MachineError
from pmemd.machine.root import Machine
from pmemd.machine.systemctl import Systemd
from pmemd.service.api import (
    BUS_NAME,
    MANAGER_INTERFACE,
    MANAGER_PATH,
    REGION_INTERFACE,
    region_path,
)
from pmemd.service.objects import CURRENT_CALL, ManagerInterface, RegionInterface
from pmemd.service.operations import Freshness, Operations
from pmemd.service.polkit import Authority
from pmemd.service.status import Status
from pmemd.service.views import (
    ManagerView,
    RegionView,
    changed_properties,
    manager_view,
    region_views,
)

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 60.0  # seconds without a call before the service exits
# On SIGTERM the change in progress finishes first, for at most this long: below the unit's
# TimeoutStopSec (90 s), after which systemd kills what is left.
DEFAULT_STOP_TIMEOUT = 80.0
# How long a thread holding the GIL (the worker planning an Apply, the reader parsing
# sysfs) may keep the bus's thread waiting to answer a property read: 0.5 ms, not Python's
# 5 ms (tests/service/test_load.py: p99 during Applies about 7.4 ms, not 9-9.5 ms).
SWITCH_INTERVAL = 0.0005
FLUSH_TIMEOUT = 5.0  # seconds for the bus to confirm the last replies before disconnecting
MOUNT_DEBOUNCE = 0.1  # seconds of mount events gathered into one reading
OWN_INTERFACES = (MANAGER_INTERFACE, REGION_INTERFACE)
PROPERTIES_INTERFACE = "org.freedesktop.DBus.Properties"
# A property read that finds the machine's files changed (and no reading under way) waits
# this long at most for the reading it starts; a slower reading (a slow /boot) answers it
# from the last one, and publishes the change when it is done.
PROPERTY_WAIT = 1.0


class _MountWatch:
    """Calls back when the mount table changes (the kernel flags mountinfo with POLLPRI)."""

    def __init__(self, mountinfo: Path, changed: Callable[[], object]) -> None:
        self.loop = asyncio.get_running_loop()
        self.changed = changed
        self.fd = os.open(mountinfo, os.O_RDONLY | os.O_CLOEXEC)
        self.watch = select.epoll()
        self.watch.register(self.fd, select.EPOLLPRI | select.EPOLLERR)
        self.loop.add_reader(self.watch.fileno(), self._ready)

    def _ready(self) -> None:
        self.watch.poll(0)
        self.changed()

    def close(self) -> None:
        self.loop.remove_reader(self.watch.fileno())
        self.watch.close()
        os.close(self.fd)


class Server:
    """The bus, the exported objects and what they show."""

    def __init__(self, machine: Machine, bus: MessageBus, config_path: Path | None = None,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        self.bus = bus
        self.idle_timeout = idle_timeout
        self.stop_timeout = stop_timeout
        self.authority = Authority(bus)
        self.ops = Operations(machine, config_path, Systemd(live=machine.root == Path("/")),
                              on_change=self.publish)
        self.manager = ManagerInterface(self)
        self.manager_view: ManagerView | None = None
        self.region_views: dict[str, RegionView] = {}
        self._regions: dict[str, RegionInterface] = {}
        self._calls = 0
        self._held: set[asyncio.Task[None]] = set()  # property reads held for a reading
        self._last_call = 0.0
        self._stop = asyncio.Event()
        self._quiet = asyncio.Event()
        self._quiet.set()

    def publish(self, status: Status) -> None:
        """Show a new reading: PropertiesChanged for what differs, region objects exported
        or dropped."""
        view = manager_view(status)
        changed = changed_properties(self.manager_view, view)
        self.manager_view = view
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

    @contextlib.contextmanager
    def in_call(self) -> Iterator[None]:
        """Count a method call in progress: the service does not exit during one. It counts
        until its reply is on its way: dbus-next sends the reply from a callback of the
        call's task, which runs before the one added here."""
        self._calls += 1
        self._quiet.clear()
        try:
            yield
        finally:
            task = asyncio.current_task()
            if task is None:
                self._call_done()
            else:
                task.add_done_callback(lambda _: self._call_done())

    def _call_done(self) -> None:
        self._calls -= 1
        self._last_call = asyncio.get_running_loop().time()
        if self._calls == 0:
            self._quiet.set()

    def _on_message(self, msg: Message) -> bool:
        """Runs before dbus-next dispatches a message; never handles it itself, and never
        waits: a property read is answered from the last reading, while the files it came
        from are checked in the background (a change is then published)."""
        if msg.message_type is MessageType.METHOD_CALL:
            CURRENT_CALL.set(msg)
            self._last_call = asyncio.get_running_loop().time()
            if msg.interface == PROPERTIES_INTERFACE and msg.member in ("Get", "GetAll"):
                freshness = self.ops.freshness()
                if freshness is Freshness.STALE:
                    held = asyncio.ensure_future(self._answer_fresh(msg))
                    self._held.add(held)
                    held.add_done_callback(self._held.discard)
                    return True  # answered once the reading it starts is done (or too slow)
                if freshness is Freshness.FRESH:
                    return False  # nothing changed: the last reading answers, nothing to read
            if msg.interface not in OWN_INTERFACES:  # pmemd's methods wait for a reading
                self.ops.poke()
        return False

    async def _answer_fresh(self, msg: Message) -> None:
        """A property read held back because the files changed (an admin edited the config
        and reads ``State`` at once): the reading first, bounded, then the read is handed to
        dbus-next as if it had just arrived (it passes: nothing is stale any more, or the
        reading is still under way)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.ops.fresh()), PROPERTY_WAIT)
        self.bus._process_message(msg)  # type: ignore[no-untyped-call]  # dbus-next 0.2.3

    def _mounts_changed(self) -> None:
        """A burst of mount events (a mount unit starting, ``umount -a``) is one reading."""
        self.ops.poke(force=True, delay=MOUNT_DEBOUNCE)

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        left = self._last_call + self.idle_timeout - loop.time()
        if self._calls or left > 0:
            loop.call_later(max(left, 0.05), self._check_idle)
        else:
            self._stop.set()

    async def _own_name(self) -> None:
        try:
            reply = await self.bus.request_name(BUS_NAME, NameFlag.DO_NOT_QUEUE)
        except DBusError as err:  # the bus policy: only root may own it
            raise MachineError(f"cannot own {BUS_NAME}: {err.text}") from None
        if reply is not RequestNameReply.PRIMARY_OWNER:
            raise MachineError(f"cannot own {BUS_NAME} ({reply.name.lower()}): "
                               "another process owns it")

    async def run(self) -> None:
        """Export the objects, own the name, answer until idle, stopped or disconnected."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):  # before anyone can know we run
            loop.add_signal_handler(signum, self._stop.set)
        self.bus.add_message_handler(self._on_message)
        await self.ops.fresh(force=True)
        self.bus.export(MANAGER_PATH, self.manager)
        await self._own_name()
        watch = _MountWatch(self.ops.machine.mountinfo, self._mounts_changed) \
            if self.ops.systemd.live else None
        self._last_call = loop.time()
        if self.idle_timeout > 0:
            loop.call_later(self.idle_timeout, self._check_idle)
        log.info("serving %s (exit after %gs idle)", BUS_NAME, self.idle_timeout)
        stop = asyncio.ensure_future(self._stop.wait())
        lost = asyncio.ensure_future(
            self.bus.wait_for_disconnect())  # type: ignore[no-untyped-call]
        await asyncio.wait([stop, lost], return_when=asyncio.FIRST_COMPLETED)
        if watch is not None:
            watch.close()
        if lost.done():
            stop.cancel()
            why = None if lost.cancelled() else lost.exception()  # retrieved: said here
            raise MachineError(f"lost the connection to the bus{f': {why}' if why else ''}")
        await self._finish_calls()
        self.bus.disconnect()  # type: ignore[no-untyped-call]
        lost.cancel()
        self.ops.close()
        log.info("exiting")


    async def _finish_calls(self) -> None:
        """Stopping (SIGTERM, idle): no new change is taken on; the change in progress
        finishes (or rolls back) and every call gets its reply before the service goes —
        for at most ``stop_timeout`` seconds, then it exits at once (status 1), leaving
        what is left to systemd's stop and the next reconcile."""
        self.ops.stopping = True
        if self.ops.operation is not None:
            log.info("stopping: waiting for %s to finish (at most %gs)", self.ops.operation,
                     self.stop_timeout)
        # Give the name up first: calls that reach the bus from now on start a new
        # instance; calls already routed here arrive before the reply and are answered.
        await self.bus.release_name(BUS_NAME)
        try:
            await asyncio.wait_for(self._quiet.wait(), self.stop_timeout)
        except TimeoutError:
            _give_up(f"stopping: {self.ops.operation or 'a call'} did not finish within "
                     f"{self.stop_timeout:g}s; exiting without it")
        # The replies are queued in order: once the bus answers a call made after them,
        # it has them all.
        with contextlib.suppress(asyncio.TimeoutError, DBusError):
            await asyncio.wait_for(self.bus.call(Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus", member="GetId")), FLUSH_TIMEOUT)


def _give_up(message: str) -> NoReturn:
    """Exit now: the worker thread that still runs a change would hold a normal exit."""
    log.error("%s", message)
    logging.shutdown()
    os._exit(1)


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
                 idle_timeout: float, stop_timeout: float) -> None:
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
    await Server(machine, bus, config_path, idle_timeout, stop_timeout).run()


def serve(machine: Machine, config_path: Path | None = None, address: str | None = None,
          idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
          stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> int:
    """``pmemd serve``: run the service until idle or stopped (exit status 0)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    asyncio.run(_serve(machine, config_path, address, idle_timeout, stop_timeout))
    return 0
