"""pmemctl never hangs on the bus: a socket that accepts and never answers, one that
rejects every authentication, and a service that does not answer in time each end in a
clear message and exit status 1 (pmemctl(1): failure), within ``--timeout``."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.service.harness import TIMEOUT, PrivateBus, Running
from tests.service.slow import slow_file
from tests.service.test_responsive import PMEM0, touch


class Listener:
    """A unix socket that accepts connections and, per ``mode``, says nothing ("silent")
    or answers every line of the D-Bus authentication with ``REJECTED`` ("reject")."""

    def __init__(self, path: Path, mode: str) -> None:
        self.path = path
        self.mode = mode
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"unix:path={self.path}"

    def _serve(self) -> None:
        with contextlib.suppress(OSError):  # closed: the test is over
            while True:
                conn, _ = self.sock.accept()
                self.accepted.append(conn)
                if self.mode == "reject":
                    threading.Thread(target=self._reject, args=(conn,), daemon=True).start()

    @staticmethod
    def _reject(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            buffered = b""
            while chunk := conn.recv(4096):
                buffered += chunk
                while b"\r\n" in buffered:
                    _, buffered = buffered.split(b"\r\n", 1)
                    conn.sendall(b"REJECTED EXTERNAL\r\n")

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture(params=["silent", "reject"])
def listener(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Listener]:
    started = Listener(workdir / f"{request.param}.socket", request.param)
    yield started
    started.close()


def pmemctl(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    """pmemctl as a user runs it; if it hangs, the test fails (after TIMEOUT)."""
    return subprocess.run([sys.executable, "-m", "pmemd.cli.ctl", *args], cwd=REPO,
                          env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)


@pytest.mark.parametrize("command", [["status"], ["apply"]])
def test_a_bus_that_never_completes_the_connection(listener: Listener,
                                                   command: list[str]) -> None:
    done = pmemctl(listener.address, "--timeout", "1", *command)
    assert done.returncode == 1, done
    assert done.stdout == ""
    if listener.mode == "silent":
        assert done.stderr == (f"pmemctl: cannot connect to the system bus "
                               f"({listener.address}): no answer within 1 s; is dbus "
                               "running?\n"), done.stderr
    else:
        assert done.stderr.startswith(f"pmemctl: cannot connect to the system bus "
                                      f"({listener.address}): the bus rejected the "
                                      "authentication"), done.stderr


def test_a_service_that_does_not_answer_in_time(bus: PrivateBus, service: Running,
                                                root: Path) -> None:
    """The real service, waiting on a slow sysfs file before it can answer GetPlan."""
    with slow_file(root / PMEM0 / "size"):
        touch(root / "etc/pmemd.yaml")
        done = pmemctl(bus.address, "--timeout", "1", "plan")
    assert done.returncode == 1, done
    assert done.stderr.startswith("pmemctl: the pmemd service did not answer within 1 s"), \
        done.stderr


def test_the_timeout_must_be_a_number_of_seconds() -> None:
    done = pmemctl("unix:path=/nonexistent", "--timeout", "soon", "status")
    assert done.returncode == 2 and "not a number of seconds: 'soon'" in done.stderr
