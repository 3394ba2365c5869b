"""Cockpit for the page's tests: the real ``cockpit-ws`` in its local-session mode on
127.0.0.1, whose ``cockpit-bridge`` talks to the tests' private system bus (where
``pmemd serve`` runs on a machine tree), and the real Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium.

* The bridge finds the page through ``XDG_DATA_DIRS``: ``<dir>/cockpit/pmemd`` is the
  checkout's ``cockpit/`` folder, as the package installs it under ``/usr/share/cockpit``.
* cockpit-ws runs in a private mount namespace where ``/usr/share/dbus-1/system-services``
  holds pmemd's shipped activation file (``installed``), or nothing of pmemd's: the
  manifest's condition (the page only where pmemd is installed) is judged by the real
  bridge on a real path.
* ``user``: the whole session (ws and bridge) as that uid, for a session without authority.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.service.harness import SHIPPED_ACTIVATION, TIMEOUT, PrivateBus
from tests.vm.network import free_port

REPO = Path(__file__).resolve().parent.parent.parent
PAGE = REPO / "cockpit"
COCKPIT_WS = Path("/usr/lib/cockpit/cockpit-ws")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SYSTEM_SERVICES = "/usr/share/dbus-1/system-services"
READY_TIMEOUT = 30.0


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    """Return once something accepts on 127.0.0.1:port; fail if ``process`` exits first."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"cockpit-ws exited with {process.returncode} (see its log)")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"cockpit-ws did not listen on 127.0.0.1:{port}")


@dataclass
class Cockpit:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cockpit/@localhost/pmemd/index.html"


def data_dirs(directory: Path, page: Path = PAGE) -> Path:
    """A data directory whose cockpit/pmemd is ``page``."""
    data = directory / "xdg-data"
    (data / "cockpit").mkdir(parents=True, exist_ok=True)
    link = data / "cockpit/pmemd"
    if not link.exists():
        link.symlink_to(page)
    return data


@contextmanager
def cockpit_ws(bus: PrivateBus, directory: Path, *, installed: bool = True,
               user: int | None = None) -> Iterator[Cockpit]:
    data = data_dirs(directory)
    services = directory / "system-services"
    services.mkdir(exist_ok=True)
    if installed:
        shutil.copy(SHIPPED_ACTIVATION, services / SHIPPED_ACTIVATION.name)
    home = directory / ("home-nobody" if user is not None else "home-root")
    home.mkdir(exist_ok=True)
    if user is not None:
        os.chown(home, user, user)
    port = free_port()
    ws = [str(COCKPIT_WS), "--local-session=cockpit-bridge", "--address", "127.0.0.1",
          "--port", str(port)]
    if user is not None:
        ws = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *ws]
    inner = ("import os, subprocess, sys\n"
             "subprocess.run(['mount', '--bind', sys.argv[1], sys.argv[2]], check=True)\n"
             "os.execvp(sys.argv[3], sys.argv[3:])\n")
    env = {**bus.env, "XDG_DATA_DIRS": f"{data}:/usr/share", "HOME": str(home),
           "XDG_RUNTIME_DIR": str(home), "LANG": "C.UTF-8"}
    log = directory / f"cockpit-ws-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", inner,
             str(services), SYSTEM_SERVICES, *ws],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, process)
        yield Cockpit(process, port, log)
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)  # a cockpit-ws that ignores SIGTERM fails the test
