"""What ``systemctl`` would do, through pystemd: daemon-reload, start and stop units.

Only on the running system: under ``--root DIR`` the tree is not the machine systemd
manages, so :class:`Systemd` with ``live=False`` skips the daemon-reload (the generator
runs when that system boots) and refuses to start or stop units. Calls block; the D-Bus
service runs them in its worker thread. Only API that pystemd 0.11 (Debian 12) and 0.15
both have is used: ``DBus``, ``match_signal``/``process``/``get_fd``, ``systemd1.Manager``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pmemd.errors import NotLive, SystemdError

log = logging.getLogger(__name__)
SYSTEMD_NAME = b"org.freedesktop.systemd1"
SYSTEMD_PATH = b"/org/freedesktop/systemd1"
MANAGER_INTERFACE = b"org.freedesktop.systemd1.Manager"


@dataclass(frozen=True)
class Systemd:
    live: bool
    job_timeout: float = 120.0

    def daemon_reload(self) -> bool:
        """``systemctl daemon-reload`` (generators run again); ``False`` when not live."""
        if not self.live:
            return False
        with _manager() as (_, manager):
            _call(manager.Manager.Reload, "daemon-reload")
        return True

    def start(self, unit: str) -> None:
        """``systemctl start UNIT``, waiting for the job; its failure is an error."""
        self._job("StartUnit", unit)

    def stop(self, unit: str) -> None:
        self._job("StopUnit", unit)

    def _job(self, verb: str, unit: str) -> None:
        if not self.live:
            raise NotLive(f"cannot {verb_text(verb)} {unit}: pmemd works on a machine tree "
                               "(--root), not on the running system")
        removed: dict[bytes, str] = {}

        def on_removed(msg: Any, error: Any = None, userdata: Any = None) -> None:
            msg.process_reply(False)
            _id, job, _unit, result = msg.body
            removed[bytes(job)] = _text(result)

        with _manager() as (bus, manager):
            bus.match_signal(SYSTEMD_NAME, SYSTEMD_PATH, MANAGER_INTERFACE, b"JobRemoved",
                             on_removed)
            method = getattr(manager.Manager, verb)
            job = bytes(_call(lambda: method(unit.encode(), b"replace"),
                              f"{verb_text(verb)} {unit}"))
            deadline = time.monotonic() + self.job_timeout
            while True:
                bus.process()  # dispatches at most one queued message (JobRemoved → above)
                if job in removed:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemdError(f"{verb_text(verb)} {unit}: no result after "
                                       f"{self.job_timeout:g}s; see 'systemctl status {unit}'")
                bus.wait(int(min(left, 1.0) * 1_000_000))  # returns at once if queued
        result = removed[job]
        if result != "done":
            raise SystemdError(f"{verb_text(verb)} {unit}: the job ended with '{result}'; "
                               f"see 'systemctl status {unit}' and 'journalctl -u {unit}'")
        log.info("%s %s: done", verb_text(verb), unit)


def verb_text(verb: str) -> str:
    return {"StartUnit": "start", "StopUnit": "stop"}.get(verb, verb)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@contextmanager
def _manager() -> Iterator[tuple[Any, Any]]:
    from pystemd.dbusexc import DBusBaseError
    from pystemd.dbuslib import DBus
    from pystemd.systemd1 import Manager

    try:
        with DBus() as bus:
            manager = Manager(bus=bus, _autoload=True)
            yield bus, manager
    except DBusBaseError as err:
        raise SystemdError(f"cannot reach systemd on the system bus: {err}") from None


def _call(request: Any, what: str) -> Any:
    from pystemd.dbusexc import DBusBaseError

    try:
        return request()
    except DBusBaseError as err:
        raise SystemdError(f"{what}: systemd refused: {err}") from None
