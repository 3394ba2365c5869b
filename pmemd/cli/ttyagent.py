"""A polkit authentication agent on the caller's terminal, as ``systemctl`` and
``hostnamectl`` start one: ``pkttyagent`` registered for this very process, so that polkit
can ask for a password on a machine without a desktop agent (an SSH session, a console).

Only for callers that may need it: not root (polkit never asks root), and only when the
caller allowed interactive authorization (a terminal, no ``--no-ask-password``). Without
pkttyagent, or when it cannot register (no polkit on the bus), the call goes ahead without
it and polkit's answer says that authentication was required.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
from dataclasses import dataclass

from pmemd.errors import CommandError
from pmemd.machine.runner import Runner

log = logging.getLogger(__name__)
PKTTYAGENT = "pkttyagent"
REGISTER_TIMEOUT = 10.0  # seconds pkttyagent may take to register with polkit
STOP_TIMEOUT = 5.0


@dataclass
class TtyAgent:
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_tty_agent(runner: Runner) -> TtyAgent | None:
    """pkttyagent for this process, once it has registered; ``None`` when there is none to
    start or it could not register."""
    if os.geteuid() == 0:
        return None
    notify_read, notify_write = os.pipe()
    try:
        # No --fallback: polkit only consults a process's own agent when it is registered
        # as that process's agent, not as a fallback for its session.
        process = runner.spawn([PKTTYAGENT, "--notify-fd", str(notify_write),
                                "--process", str(os.getpid())],
                               pass_fds=(notify_write,))
    except CommandError as err:
        log.debug("no polkit agent on the terminal: %s", err)
        os.close(notify_read)
        return None
    finally:
        os.close(notify_write)
    try:
        # pkttyagent closes the notify descriptor once registered (or when it exits).
        ready, _, _ = select.select([notify_read], [], [], REGISTER_TIMEOUT)
        while ready and os.read(notify_read, 64):
            ready, _, _ = select.select([notify_read], [], [], REGISTER_TIMEOUT)
    finally:
        os.close(notify_read)
    if process.poll() is not None:
        log.debug("pkttyagent could not register (exit status %s)", process.returncode)
        return None
    return TtyAgent(process)
