"""A private system-like bus for the D-Bus tests and bench/dbus.py.

* :class:`PrivateBus` runs ``dbus-daemon --config-file`` with the system bus's default-deny
  policy and pmemd's *shipped* policy (``etc/dbus-1/system.d/io.pmemd1.conf``) included
  as is; optionally an activation directory holding pmemd's shipped activation file with
  only ``Exec=`` replaced (no systemd here to start ``pmemd.service``), and the real
  polkit policy so that ``polkitd`` may own its name.
* :func:`start_polkitd` runs the real ``polkitd`` on that bus, in a private mount
  namespace where ``/usr/share/polkit-1/actions`` holds pmemd's shipped ``.policy`` and
  ``/etc/polkit-1/rules.d`` the test's rules.
* Waiting is event-driven: :func:`wait_for_owner` watches ``NameOwnerChanged``.
* :func:`call` sends one method call with dbus-next; ``python -m tests.service.client`` does
  the same from a process running as another user (``nobody``).

Every directory is world-readable so that an unprivileged client can reach the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageFlag, MessageType
from dbus_next.message import Message

REPO = Path(__file__).resolve().parent.parent.parent
SHIPPED_POLICY = REPO / "etc/dbus-1/system.d/io.pmemd1.conf"
SHIPPED_ACTIVATION = REPO / "etc/dbus-1/system-services/io.pmemd1.service"
SHIPPED_ACTIONS = REPO / "etc/polkit-1/actions/io.pmemd1.policy"
SHIPPED_INTERFACES = REPO / "etc/dbus-1/interfaces"
POLKIT_BUS_POLICY = Path("/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf")
POLKITD = Path("/usr/lib/polkit-1/polkitd")
POLKIT_ACTIONS_DIR = "/usr/share/polkit-1/actions"
POLKIT_RULES_DIR = "/etc/polkit-1/rules.d"
NOBODY = 65534
BUS_NAME = "io.pmemd1"
TIMEOUT = 60.0  # bound on every wait; reached only when something is broken

# The system bus's default policy (Debian's /usr/share/dbus-1/system.conf): deny owning
# names and sending method calls unless a service's policy file allows it.
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
{extra}</busconfig>
"""


def world_readable_dir(prefix: str) -> Path:
    """A fresh directory under /tmp that other users can traverse (for the socket)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def activation_file(exec_argv: Sequence[str]) -> str:
    """The shipped activation file with ``Exec=`` replaced, every other line kept."""
    lines = ["Exec=" + " ".join(exec_argv) if line.startswith("Exec=") else line
             for line in SHIPPED_ACTIVATION.read_text().splitlines()]
    return "\n".join(lines) + "\n"


def serve_argv(root: Path, idle_timeout: float = 0, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pmemd", "serve", "--root", str(root),
            "--idle-timeout", f"{idle_timeout:g}", *extra]


@dataclass
class PrivateBus:
    directory: Path
    activation: Sequence[str] | None = None  # Exec= argv for the activation file
    polkit: bool = False  # let polkitd own its name (the real polkit bus policy)
    policy: str = ""  # more <policy> elements (e.g. for a benchmark's own service)
    process: subprocess.Popen[bytes] | None = None
    address: str = ""
    config: Path = field(init=False)

    def start(self) -> PrivateBus:
        extra = [f"  <include>{SHIPPED_POLICY}</include>\n"]
        if self.polkit:
            extra.append(f"  <include>{POLKIT_BUS_POLICY}</include>\n")
        extra.append(self.policy)
        if self.activation is not None:
            services = self.directory / "services"
            services.mkdir(mode=0o755)
            (services / SHIPPED_ACTIVATION.name).write_text(activation_file(self.activation))
            extra.append(f"  <servicedir>{services}</servicedir>\n")
        self.config = self.directory / "bus.conf"
        self.config.write_text(BUS_CONFIG.format(socket=self.directory / "bus.socket",
                                                 extra="".join(extra)))
        # The log also gets what activated services write to stderr.
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                ["dbus-daemon", "--config-file", str(self.config), "--nofork",
                 "--print-address"], stdout=subprocess.PIPE, stderr=log, cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)})
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode().strip()  # blocks until it listens
        if not line:
            self.process.wait(timeout=TIMEOUT)
            raise RuntimeError(f"dbus-daemon did not start: {self.log.read_text()}")
        self.address = line
        return self

    @property
    def log(self) -> Path:
        return self.directory / "bus.log"

    @property
    def socket(self) -> str:
        return f"unix:path={self.directory / 'bus.socket'}"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.communicate(timeout=TIMEOUT)


@contextlib.contextmanager
def private_bus(directory: Path, *, activation: Sequence[str] | None = None,
                polkit: bool = False) -> Iterator[PrivateBus]:
    bus = PrivateBus(directory, activation, polkit).start()
    try:
        yield bus
    finally:
        bus.stop()


# --- talking to the bus -------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    body: list[Any]
    error: str | None = None  # the D-Bus error name
    text: str = ""

    def ok(self) -> list[Any]:
        assert self.error is None, f"{self.error}: {self.text}"
        return self.body


async def connect(address: str) -> MessageBus:
    bus: MessageBus = await MessageBus(bus_address=address).connect()
    return bus


async def acall(bus: MessageBus, path: str, interface: str, member: str,
                signature: str = "", body: Sequence[Any] = (), *,
                destination: str = BUS_NAME, interactive: bool = False) -> Reply:
    flags = MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION if interactive else MessageFlag.NONE
    reply = await bus.call(Message(destination=destination, path=path, interface=interface,
                                   member=member, signature=signature, body=list(body),
                                   flags=flags))
    assert reply is not None
    if reply.message_type is MessageType.ERROR:
        return Reply([], reply.error_name, reply.body[0] if reply.body else "")
    return Reply(list(reply.body))


def call(address: str, path: str, interface: str, member: str, signature: str = "",
         body: Sequence[Any] = (), **options: Any) -> Reply:
    async def run() -> Reply:
        bus = await connect(address)
        try:
            return await asyncio.wait_for(
                acall(bus, path, interface, member, signature, body, **options), TIMEOUT)
        finally:
            bus.disconnect()  # type: ignore[no-untyped-call]
    return asyncio.run(run())


async def await_owner(bus: MessageBus, name: str, *, owned: bool,
                      process: subprocess.Popen[bytes] | None = None,
                      timeout: float = TIMEOUT) -> None:
    """Return once ``name`` has an owner (``owned``) or none, watching NameOwnerChanged;
    fail early if ``process`` (the would-be owner) exits first."""
    loop = asyncio.get_running_loop()
    changed: asyncio.Future[None] = loop.create_future()

    def on_signal(msg: Message) -> bool:
        if (msg.message_type is MessageType.SIGNAL and msg.member == "NameOwnerChanged"
                and msg.body[0] == name and bool(msg.body[2]) == owned
                and not changed.done()):
            changed.set_result(None)
        return False

    bus.add_message_handler(on_signal)
    rule = f"type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{name}'"
    (await acall(bus, "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s",
                 [rule], destination="org.freedesktop.DBus")).ok()
    has = (await acall(bus, "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner",
                       "s", [name], destination="org.freedesktop.DBus")).ok()[0]
    if has == owned:
        return
    waiters: list[asyncio.Future[Any]] = [changed]
    pidfd = None
    if process is not None:  # readable when the process exits
        pidfd = os.pidfd_open(process.pid)
        exited: asyncio.Future[None] = loop.create_future()

        def on_exit() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, on_exit)
        waiters.append(exited)
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        if pidfd is not None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    if changed in done:
        return
    state = "an owner" if owned else "no owner"
    if process is not None and process.poll() is not None:
        raise RuntimeError(f"{name}: its process exited with {process.returncode} before the "
                           f"name had {state}")
    raise TimeoutError(f"{name} did not get {state} within {timeout:g}s")


def wait_for_owner(address: str, name: str = BUS_NAME, *, owned: bool = True,
                   process: subprocess.Popen[bytes] | None = None) -> None:
    async def run() -> None:
        bus = await connect(address)
        try:
            await await_owner(bus, name, owned=owned, process=process)
        finally:
            bus.disconnect()  # type: ignore[no-untyped-call]
    asyncio.run(run())


# --- the service and polkitd --------------------------------------------------------------


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    stderr: str = ""  # once stopped

    def stop(self) -> tuple[int, str]:
        """Stop it (if still running); its exit status and standard error."""
        if self.process.poll() is None:
            self.process.terminate()
        _, err = self.process.communicate(timeout=TIMEOUT)
        self.stderr = err.decode(errors="replace")
        return self.process.returncode, self.stderr


def start_service(bus: PrivateBus, root: Path, *extra: str, idle_timeout: float = 0,
                  prefix: Sequence[str] = ()) -> Running:
    """``pmemd serve`` on ``bus`` over ``root``, once it owns the name; ``prefix``: a
    command it runs under (e.g. ``setpriv`` dropping capabilities, as the unit does)."""
    process = subprocess.Popen([*prefix, *serve_argv(root, idle_timeout, *extra)],
                               env=bus.env, cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        wait_for_owner(bus.address, BUS_NAME, process=process)
    except RuntimeError:
        _, err = process.communicate(timeout=TIMEOUT)
        raise RuntimeError(f"pmemd serve failed: {err.decode(errors='replace')}") from None
    return Running(process)


@contextlib.contextmanager
def serving(bus: PrivateBus, root: Path, *extra: str, idle_timeout: float = 0,
            prefix: Sequence[str] = ()) -> Iterator[Running]:
    """``pmemd serve`` for the ``with`` block; then it must exit cleanly (SIGTERM: 0, no
    traceback in its log, which stays in ``.stderr``)."""
    running = start_service(bus, root, *extra, idle_timeout=idle_timeout, prefix=prefix)
    try:
        yield running
    finally:
        status, err = running.stop()
    assert status == 0 and "Traceback" not in err, err


def start_polkitd(bus: PrivateBus, directory: Path, rules: str = "") -> Running:
    """The real polkitd on ``bus``, seeing pmemd's shipped actions and ``rules`` (JS)."""
    actions = directory / "polkit-actions"
    rules_dir = directory / "polkit-rules"
    for path in (actions, rules_dir):
        path.mkdir(mode=0o755)
    shutil.copy(SHIPPED_ACTIONS, actions / SHIPPED_ACTIONS.name)
    if rules:
        (rules_dir / "50-pmemd-test.rules").write_text(rules)
    # Runs inside the new mount namespace, as the namespace's first process.
    inner = ("import os, subprocess, sys\n"
             "for source, target in zip(sys.argv[1::2], sys.argv[2::2]):\n"
             "    subprocess.run(['mount', '--bind', source, target], check=True)\n"
             f"os.execv({str(POLKITD)!r}, ['polkitd', '--no-debug'])\n")
    process = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", inner,
         str(actions), POLKIT_ACTIONS_DIR, str(rules_dir), POLKIT_RULES_DIR],
        env=bus.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_for_owner(bus.address, "org.freedesktop.PolicyKit1", process=process)
    return Running(process)


def as_nobody(argv: Sequence[str]) -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")
