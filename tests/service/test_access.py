"""Who may do what: an unprivileged caller (``nobody``) reads everything and gets
AccessDenied on every change, whether polkit is on the bus (real polkitd, pmemd's shipped
actions) or not; polkit rules really decide; only root may own io.pmemd1."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.service.conftest import CONVERGED, make_machine
from tests.service.harness import (
    BUS_NAME,
    TIMEOUT,
    PrivateBus,
    Reply,
    Running,
    as_nobody,
    serve_argv,
    serving,
    start_polkitd,
)

MANAGER = "/io/pmemd1"
DATA = "/io/pmemd1/region/data"
ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"

# Every method that changes the machine, with arguments that would succeed for root.
MUTATING = [
    pytest.param(MANAGER, "io.pmemd1.Manager", "SetConfig", "sb", [CONVERGED, False],
                 id="SetConfig"),
    pytest.param(MANAGER, "io.pmemd1.Manager", "SetConfig", "sb", [CONVERGED, True],
                 id="SetConfig-apply"),
    pytest.param(MANAGER, "io.pmemd1.Manager", "Apply", "b", [False], id="Apply"),
    pytest.param(MANAGER, "io.pmemd1.Manager", "Reload", "", [], id="Reload"),
    pytest.param(MANAGER, "io.pmemd1.Manager", "RetryTrial", "", [], id="RetryTrial"),
    pytest.param(MANAGER, "io.pmemd1.Manager", "AbortTrial", "", [], id="AbortTrial"),
    pytest.param(DATA, "io.pmemd1.Region", "Mount", "", [], id="Mount"),
    pytest.param(DATA, "io.pmemd1.Region", "Unmount", "", [], id="Unmount"),
    pytest.param(DATA, "io.pmemd1.Region", "Format", "b", [False], id="Format"),
    pytest.param(DATA, "io.pmemd1.Region", "Format", "b", [True], id="Format-force"),
]


def client(bus: PrivateBus, path: str, interface: str, member: str, signature: str = "",
           body: Any = (), *, nobody: bool = True, extra: tuple[str, ...] = ()) -> Reply:
    """One call from its own process, as ``nobody`` (or root)."""
    return client_agent(bus, path, interface, member, signature, body, nobody=nobody,
                        extra=extra)[0]


def client_agent(bus: PrivateBus, path: str, interface: str, member: str,
                 signature: str = "", body: Any = (), *, nobody: bool = True,
                 extra: tuple[str, ...] = ()) -> tuple[Reply, list[list[str]]]:
    """The reply, and what polkit asked the client's agent (with ``--agent``)."""
    argv = ["/usr/bin/python3", "-m", "tests.service.client", bus.address, path, interface, member,
            signature, json.dumps(list(body)), *extra]
    done = subprocess.run(as_nobody(argv) if nobody else argv, cwd=REPO, capture_output=True,
                          text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    return Reply(reply["body"], reply["error"], reply["text"]), reply["agent"]


def busctl_as_nobody(bus: PrivateBus, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(as_nobody(["busctl", "--system", "--no-pager", *args]), env=bus.env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def etc_snapshot(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "etc").iterdir())}


# --- reading is open ----------------------------------------------------------------------


def test_nobody_reads_every_property_and_read_only_method(bus: PrivateBus,
                                                          service: Running) -> None:
    for args in (("introspect", BUS_NAME, MANAGER),
                 ("introspect", BUS_NAME, DATA),
                 ("get-property", BUS_NAME, MANAGER, "io.pmemd1.Manager", "State"),
                 ("get-property", BUS_NAME, DATA, "io.pmemd1.Region", "Device"),
                 ("call", BUS_NAME, MANAGER, "io.pmemd1.Manager", "GetPlan"),
                 ("call", BUS_NAME, MANAGER, "io.pmemd1.Manager", "ListRegions"),
                 ("call", BUS_NAME, MANAGER, "io.pmemd1.Manager", "GetMemoryMap"),
                 ("call", BUS_NAME, MANAGER, "io.pmemd1.Manager", "Validate", "s", CONVERGED),
                 ("call", BUS_NAME, MANAGER, "io.pmemd1.Manager", "PlanConfig", "s",
                  CONVERGED)):
        done = busctl_as_nobody(bus, *args)
        assert done.returncode == 0, (args, done.stderr)
    state = client(bus, MANAGER, "org.freedesktop.DBus.Properties", "GetAll", "s",
                   ["io.pmemd1.Manager"]).ok()[0]
    assert state["State"] == "changes-pending"
    assert state["DesiredMemmap"] == ["memmap=512M!1G", "memmap=256M!1536M"]


def test_nobody_may_not_set_properties(bus: PrivateBus, service: Running) -> None:
    done = busctl_as_nobody(bus, "set-property", BUS_NAME, MANAGER, "io.pmemd1.Manager",
                            "State", "s", "converged")
    assert done.returncode != 0
    assert "Access denied" in done.stderr  # the bus policy: Properties.Set is not allowed


# --- changing is not, without polkit ------------------------------------------------------


@pytest.mark.parametrize(("path", "interface", "member", "signature", "body"), MUTATING)
def test_without_polkit_nobody_is_denied_every_change(bus: PrivateBus, service: Running,
                                                      root: Path, path: str, interface: str,
                                                      member: str, signature: str,
                                                      body: list[Any]) -> None:
    before = etc_snapshot(root)
    reply = client(bus, path, interface, member, signature, body)
    assert reply.error == ACCESS_DENIED, reply
    assert "polkit is not running on the system bus, so only root may do this" in reply.text
    assert etc_snapshot(root) == before


def test_the_same_call_from_root_gets_past_the_check(bus: PrivateBus, service: Running,
                                                     root: Path) -> None:
    reply = client(bus, MANAGER, "io.pmemd1.Manager", "SetConfig", "sb", [CONVERGED, False],
                   nobody=False)
    assert reply.ok() == ["converged"]
    assert (root / "etc/pmemd.yaml").read_text() == CONVERGED


# --- owning the name ----------------------------------------------------------------------


def test_only_root_may_own_the_name(bus: PrivateBus, root: Path) -> None:
    reply = client(bus, "/", "", "", extra=("--own", BUS_NAME))
    assert reply.error == ACCESS_DENIED
    assert "not allowed to own the service \"io.pmemd1\"" in reply.text

    done = subprocess.run(as_nobody(serve_argv(root)), env=bus.env, cwd=REPO,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 1
    assert "pmemd: " in done.stderr and "io.pmemd1" in done.stderr
    assert "Traceback" not in done.stderr

    # root may (the fixture's service is root)
    reply = client(bus, "/", "", "", nobody=False, extra=("--own", BUS_NAME))
    assert reply.ok() == [1]  # DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER


# --- with polkit on the bus ---------------------------------------------------------------

# nobody may mount and manage, not format (the rules are the test's, the actions shipped)
RULES = """\
polkit.addRule(function(action, subject) {
    if (subject.user == "nobody" &&
        (action.id == "io.pmemd1.mount" || action.id == "io.pmemd1.manage")) {
        return polkit.Result.YES;
    }
});
"""


@pytest.fixture
def polkit_bus(workdir: Path) -> Iterator[PrivateBus]:
    started = PrivateBus(workdir, polkit=True).start()
    yield started
    started.stop()


@pytest.fixture
def polkitd(polkit_bus: PrivateBus, workdir: Path) -> Iterator[Running]:
    running = start_polkitd(polkit_bus, workdir)
    yield running
    running.stop()


@pytest.fixture
def polkit_service(polkit_bus: PrivateBus, polkitd: Running, root: Path) -> Iterator[Running]:
    with serving(polkit_bus, root) as running:
        yield running


@pytest.mark.parametrize(("path", "interface", "member", "signature", "body"), MUTATING)
def test_polkit_denies_nobody_every_change_by_default(polkit_bus: PrivateBus,
                                                      polkit_service: Running, root: Path,
                                                      path: str, interface: str,
                                                      member: str, signature: str,
                                                      body: list[Any]) -> None:
    before = etc_snapshot(root)
    reply = client(polkit_bus, path, interface, member, signature, body)
    assert reply.error == ACCESS_DENIED, reply
    assert "authentication is required (io.pmemd1." in reply.text
    assert etc_snapshot(root) == before


@pytest.mark.parametrize("interactive", [False, True])
def test_polkit_asks_the_callers_agent_only_when_the_caller_allows_it(
        polkit_bus: PrivateBus, polkit_service: Running, root: Path,
        interactive: bool) -> None:
    """The caller's ALLOW_INTERACTIVE_AUTHORIZATION flag reaches polkit as
    AllowUserInteraction: then polkit asks the caller's authentication agent (here one that
    declines), with the shipped action's message; without the flag, it never asks."""
    extra = ("--agent", "--interactive") if interactive else ("--agent",)
    reply, asked = client_agent(polkit_bus, MANAGER, "io.pmemd1.Manager", "SetConfig", "sb",
                                [CONVERGED, False], extra=extra)
    assert reply.error == ACCESS_DENIED
    if interactive:
        assert asked == [["io.pmemd1.manage", "Authentication is required to change the "
                          "persistent-memory configuration and the kernel command line."]]
        assert reply.text.endswith("authentication was dismissed")
    else:
        assert asked == []
        assert "authentication is required (io.pmemd1.manage)" in reply.text
    assert (root / "etc/pmemd.yaml").read_text() != CONVERGED


def pmemctl_on_a_terminal(bus: PrivateBus, *args: str) -> tuple[int, str]:
    """``pmemctl ARGS`` as ``nobody`` on a pseudo-terminal, as a user over SSH runs it:
    its exit status and what appeared on the terminal. A password prompt is answered with
    a wrong password."""
    argv = as_nobody([sys.executable, "-m", "pmemd.cli.ctl", *args])
    env = {"DBUS_SYSTEM_BUS_ADDRESS": bus.address, "PATH": "/usr/bin:/bin", "HOME": "/",
           "PYTHONPATH": str(REPO), "TERM": "dumb"}
    pid, terminal = pty.fork()
    if pid == 0:  # the child: exec at once (nothing else is safe after fork)
        os.chdir(REPO)
        os.execvpe(argv[0], argv, env)  # PATH in env finds setpriv
    shown = b""
    answered = False
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        # Answer once the agent reads the password: it turns echo off first, flushing what
        # was typed before (so typing right after the prompt would be lost).
        if b"Password:" in shown and not answered and \
                not termios.tcgetattr(terminal)[3] & termios.ECHO:
            os.write(terminal, b"not-the-password\n")
            answered = True
        ready, _, _ = select.select([terminal], [], [], 0.1)
        if not ready:
            continue
        try:
            data = os.read(terminal, 4096)
        except OSError:  # EIO: the child and its agent closed the terminal
            break
        if not data:
            break
        shown += data
    else:  # hung: end it (closing the terminal hangs up its agent too), then fail
        os.kill(pid, signal.SIGKILL)
    os.close(terminal)
    _, status = os.waitpid(pid, 0)
    assert time.monotonic() < deadline, f"pmemctl hung on the terminal: {shown!r}"
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_pmemctl_on_a_terminal_asks_for_a_password_there(
        polkit_bus: PrivateBus, polkit_service: Running, root: Path) -> None:
    """On a terminal without a desktop agent (SSH), pmemctl starts pkttyagent for itself,
    as systemctl does: polkit asks there, with the shipped action's message; a wrong
    password is a refusal, and nothing changes."""
    before = etc_snapshot(root)
    status, shown = pmemctl_on_a_terminal(polkit_bus, "apply")
    assert "AUTHENTICATING FOR io.pmemd1.manage" in shown, shown
    assert ("Authentication is required to change the persistent-memory configuration and "
            "the kernel command line.") in shown, shown
    assert "Password:" in shown and "AUTHENTICATION FAILED" in shown, shown
    assert status == 1 and "pmemctl: access denied" in shown, shown
    assert etc_snapshot(root) == before
    assert not [line for line in _processes() if "pkttyagent" in line]  # stopped with it


def test_pmemctl_asks_nothing_with_no_ask_password(
        polkit_bus: PrivateBus, polkit_service: Running) -> None:
    status, shown = pmemctl_on_a_terminal(polkit_bus, "--no-ask-password", "apply")
    assert "AUTHENTICATING" not in shown and "Password:" not in shown, shown
    assert status == 1 and "authentication is required (io.pmemd1.manage)" in shown, shown


def _processes() -> list[str]:
    done = subprocess.run(["ps", "-e", "-o", "args"], capture_output=True, text=True,
                          check=True, timeout=TIMEOUT)
    return done.stdout.splitlines()


def test_polkit_rules_decide_per_action(polkit_bus: PrivateBus, workdir: Path) -> None:
    root = make_machine(workdir / "ruled")
    polkitd = start_polkitd(polkit_bus, workdir / "ruled", RULES)
    try:
        with serving(polkit_bus, root) as service:
            # io.pmemd1.manage granted: nobody replaces the config
            reply = client(polkit_bus, MANAGER, "io.pmemd1.Manager", "SetConfig", "sb",
                           [CONVERGED, False])
            assert reply.ok() == ["converged"]
            assert (root / "etc/pmemd.yaml").read_text() == CONVERGED
            # io.pmemd1.mount granted: past polkit, then stopped by --root (no systemd)
            reply = client(polkit_bus, DATA, "io.pmemd1.Region", "Unmount")
            assert reply.error == "io.pmemd1.Error.NotSupported", reply
            assert "not on the running system" in reply.text
            # io.pmemd1.format not granted
            reply = client(polkit_bus, DATA, "io.pmemd1.Region", "Format", "b", [True])
            assert reply.error == ACCESS_DENIED
            assert "authentication is required (io.pmemd1.format)" in reply.text
    finally:
        polkitd.stop()
    assert "refused io.pmemd1.format to" in service.stderr  # the log says who was refused


def test_pmemctl_refused_by_polkit_says_access_denied(polkit_bus: PrivateBus,
                                                      polkit_service: Running) -> None:
    done = subprocess.run(as_nobody(["/usr/bin/python3", "-m", "pmemd.cli.ctl", "apply"]),
                          cwd=REPO, env={"DBUS_SYSTEM_BUS_ADDRESS": polkit_bus.address,
                                         "PATH": "/usr/bin:/bin"},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("pmemctl: access denied: not allowed to change pmemd's "
                                  "configuration and the kernel command line")
