"""Boot the test image under qemu and drive it step by step, through real reboots.

A ``Guest`` boots a copy-on-write overlay of a cached image (the cache stays clean) with:

* the serial console on qemu's stdout, saved as ``console.log`` in the guest's work dir;
* ``share/`` exported over 9p (``mount_tag=host0``, mounted at ``/mnt/host`` in the guest);
* a virtio-serial control port (``pmemd.test``) to the guest's step runner
  (``guest/pmemd-test-runner``), which says ``ready BOOT_ID`` once per boot after
  multi-user.target and runs the steps the host asks for.

Waiting is event-driven: one I/O thread reads the console and the control port and wakes
the waiters. Boots are counted by SeaBIOS's banner on the console; every wait is bounded by
its own timeout, by the guest's total time and by its number of boots.

By hand (as root): ``python -m tests.vm.qemu`` boots the base image with the console on
your terminal (log in as root, no password; Ctrl-A X quits).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, TypeVar

from pmemd.errors import CommandError
from pmemd.machine.runner import Runner

QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
# No KVM in this nested environment (guests hang); without tb-size=256 the boots after an
# in-guest reboot were measured 2-4 times slower.
MACHINE = ("-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max",
           "-nographic", "-nic", "none")
BANNER = b"SeaBIOS (version "
# UEFI guests: Debian's ovmf, the code read-only, a copy of the variables per guest; OVMF
# prints this once per boot on the serial console (its debug port stays silent)
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
UEFI_BANNER = b"BdsDxe: loading Boot"
PORT_NAME = "pmemd.test"
SHARE_TAG = "host0"
SHARE_MOUNT = "/mnt/host"  # where the guest mounts the share (its fstab, from image.sh)
STEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
CONSOLE_TAIL = 40
T = TypeVar("T")


class VMError(Exception):
    """The guest did not do what the harness waited for; carries the console's last lines."""


def missing_qemu_tools(uefi: bool = False) -> list[str]:
    missing = [f"{tool} (Debian package {package})"
               for tool, package in ((QEMU, "qemu-system-x86"), (QEMU_IMG, "qemu-utils"))
               if shutil.which(tool) is None]
    if uefi:
        missing += [f"{path} (Debian package ovmf)" for path in (OVMF_CODE, OVMF_VARS)
                    if not path.is_file()]
    return missing


@dataclass(frozen=True)
class Boot:
    """One boot that reached multi-user.target and the step runner."""

    number: int          # 1 for the first boot of this guest (SeaBIOS banners seen)
    boot_id: str         # the guest kernel's random boot id
    seconds: float       # from this boot's SeaBIOS banner to "ready"


@dataclass(frozen=True)
class Step:
    name: str
    status: int
    stdout: str
    stderr: str

    def check(self) -> Step:
        """This step, or a VMError with its output if it exited non-zero."""
        if self.status != 0:
            raise VMError(f"step {self.name} exited with status {self.status}\n"
                          f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}")
        return self


@dataclass
class _State:
    """What the I/O thread saw; guarded by ``Guest._changed``."""

    banners: list[float] = field(default_factory=list)   # monotonic time of each banner
    ready: list[Boot] = field(default_factory=list)
    ready_times: list[float] = field(default_factory=list)  # monotonic, each ready
    done: dict[str, int] = field(default_factory=dict)
    console: deque[str] = field(default_factory=lambda: deque(maxlen=CONSOLE_TAIL))
    exited: int | None = None


class Guest:
    """A qemu guest booted from ``image`` (never written: an overlay takes the writes).

    ``workdir`` receives ``console.log``, ``share/`` (steps and their results) and the
    overlay ``disk.qcow2`` (removed on close unless ``keep_disk``).
    """

    def __init__(self, image: Path, workdir: Path, *, memory: str = "2G", cpus: int = 2,
                 max_boots: int = 4, timeout: float = 900.0, keep_disk: bool = False,
                 extra_args: Sequence[str] = (), uefi: bool = False) -> None:
        self.image = image
        self.workdir = workdir
        self.share = workdir / "share"
        self.console_log = workdir / "console.log"
        self.disk = workdir / "disk.qcow2"
        self.memory = memory
        self.cpus = cpus
        self.max_boots = max_boots
        self.timeout = timeout
        self.keep_disk = keep_disk
        self.extra_args = tuple(extra_args)
        self.uefi = uefi
        self.banner = UEFI_BANNER if uefi else BANNER
        self.efivars = workdir / "efivars.fd"  # this guest's UEFI variables (NVRAM)
        self._state = _State()
        self._changed = threading.Condition()
        self._steps = itertools.count(1)
        self._booted = 0  # how many "ready" boots the caller has consumed
        self._process: subprocess.Popen[bytes] | None = None
        self._connection: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._socket_dir: Path | None = None
        self._deadline = 0.0

    # --- life cycle ------------------------------------------------------------------

    def argv(self, control: Path | None) -> list[str]:
        firmware = ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
                    "-drive", f"if=pflash,format=raw,unit=1,file={self.efivars}"] \
            if self.uefi else []
        argv = [QEMU, *MACHINE, *firmware, "-m", self.memory, "-smp", str(self.cpus),
                "-drive", f"file={self.disk},format=qcow2,if=virtio,cache=unsafe",
                "-virtfs", f"local,path={self.share},mount_tag={SHARE_TAG},security_model=none"]
        if control is not None:
            argv += ["-chardev", f"socket,id=control,path={control}",
                     "-device", "virtio-serial-pci",
                     "-device", f"virtserialport,chardev=control,name={PORT_NAME}"]
        return argv + list(self.extra_args)

    def create_disk(self) -> None:
        """A fresh qcow2 overlay backed by the (read-only) image."""
        self.disk.unlink(missing_ok=True)
        try:
            Runner().run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", "raw",
                          "-b", str(self.image), str(self.disk)])
        except CommandError as err:
            raise VMError(str(err)) from None

    def start(self) -> Guest:
        missing = missing_qemu_tools(self.uefi)
        if missing:
            raise VMError("cannot boot the test guest, missing: " + ", ".join(missing)
                          + " — .ci/debian-packages lists them; ./run tests installs them")
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        (self.share / "steps").mkdir(parents=True)
        self.create_disk()
        if self.uefi:
            shutil.copyfile(OVMF_VARS, self.efivars)
        self._deadline = time.monotonic() + self.timeout
        # A short path: AF_UNIX allows 108 bytes, a test's work dir can be longer.
        self._socket_dir = Path(tempfile.mkdtemp(prefix="pmemd-vm-"))
        control = self._socket_dir / "control.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(control))
        listener.listen(1)
        console = self.console_log.open("wb")
        self._process = subprocess.Popen(self.argv(control), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._thread = threading.Thread(target=self._pump, args=(listener, console),
                                        name="qemu-io", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop qemu (if still running) and release everything; the logs stay."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        if not self.keep_disk:
            self.disk.unlink(missing_ok=True)

    def __enter__(self) -> Guest:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # --- the I/O thread ----------------------------------------------------------------

    def _pump(self, listener: socket.socket, log: BinaryIO) -> None:
        assert self._process is not None and self._process.stdout is not None
        out = self._process.stdout
        selector = selectors.DefaultSelector()
        selector.register(out, selectors.EVENT_READ, "console")
        selector.register(listener, selectors.EVENT_READ, "listen")
        console_rest = b""
        control_rest = b""
        try:
            while True:
                for key, _ in selector.select():
                    if key.data == "listen":
                        connection, _ = listener.accept()
                        selector.unregister(listener)
                        listener.close()
                        selector.register(connection, selectors.EVENT_READ, "control")
                        self._connection = connection
                    elif key.data == "console":
                        chunk = os.read(out.fileno(), 65536)
                        if not chunk:
                            status = self._process.wait()

                            def exited(state: _State, status: int = status) -> None:
                                state.exited = status

                            self._update(exited)
                            return
                        log.write(chunk)
                        log.flush()
                        console_rest = self._console_lines(console_rest + chunk)
                    else:
                        chunk = key.fileobj.recv(4096)  # type: ignore[union-attr]
                        if not chunk:
                            selector.unregister(key.fileobj)
                            continue
                        control_rest = self._control_lines(control_rest + chunk)
        finally:
            selector.close()
            log.close()
            if self._connection is not None:
                self._connection.close()

    def _update(self, change: Callable[[_State], None]) -> None:
        with self._changed:
            change(self._state)
            self._changed.notify_all()

    def _console_lines(self, data: bytes) -> bytes:
        *lines, rest = data.split(b"\n")
        if lines:
            now = time.monotonic()

            def record(state: _State) -> None:
                for line in lines:
                    if self.banner in line:
                        state.banners.append(now)
                    state.console.append(line.decode(errors="replace").rstrip("\r"))

            self._update(record)
        return rest

    def _control_lines(self, data: bytes) -> bytes:
        *lines, rest = data.split(b"\n")
        now = time.monotonic()
        for line in lines:
            words = line.decode(errors="replace").split()
            if len(words) == 2 and words[0] == "ready":
                boot_id = words[1]

                def ready(state: _State, boot_id: str = boot_id) -> None:
                    since = state.banners[-1] if state.banners else now
                    state.ready.append(Boot(len(state.banners), boot_id, now - since))
                    state.ready_times.append(now)

                self._update(ready)
            elif len(words) == 3 and words[0] == "done" and words[2].isdigit():

                def done(state: _State, name: str = words[1], status: int = int(words[2])) -> None:
                    state.done[name] = status

                self._update(done)
        return rest

    # --- waiting ---------------------------------------------------------------------

    def console_tail(self) -> str:
        with self._changed:
            return "\n".join(self._state.console)

    def _fail(self, message: str) -> VMError:
        return VMError(f"{message}\n--- last console lines ({self.console_log}):\n"
                       f"{self.console_tail()}")

    def _wait(self, what: str, found: Callable[[_State], T | None], timeout: float) -> T:
        """Block until ``found(state)`` is not None; fail on exit, boot loop or time."""
        own = time.monotonic() + timeout
        deadline = min(self._deadline, own)
        bound = (f"{timeout:.0f} s" if own <= self._deadline
                 else f"the guest's {self.timeout:.0f} s in total")
        with self._changed:
            while True:
                result = found(self._state)
                if result is not None:
                    return result
                state = self._state
                if len(state.banners) > self.max_boots:
                    raise self._fail(f"waiting for {what}: the guest booted "
                                     f"{len(state.banners)} times (at most {self.max_boots})")
                if state.exited is not None:
                    raise self._fail(f"waiting for {what}: qemu exited with status "
                                     f"{state.exited}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._fail(f"waiting for {what}: no answer within {bound}")
                self._changed.wait(remaining)

    def wait_boot(self, timeout: float = 300.0) -> Boot:
        """The next boot that reaches multi-user.target and the step runner."""
        wanted = self._booted + 1

        def ready(state: _State) -> Boot | None:
            return state.ready[-1] if len(state.ready) >= wanted else None

        boot = self._wait(f"boot {wanted} to reach multi-user.target", ready, timeout)
        self._booted = len(self._state.ready)
        return boot

    @property
    def boot_started(self) -> list[float]:
        """When each boot began (the firmware's banner; ``time.monotonic()``)."""
        with self._changed:
            return list(self._state.banners)

    @property
    def ready_at(self) -> list[float]:
        """When each boot reached the step runner (``time.monotonic()``)."""
        with self._changed:
            return list(self._state.ready_times)

    @property
    def boots(self) -> int:
        """Firmware banners seen so far (boots started, including a running one)."""
        with self._changed:
            return len(self._state.banners)

    # --- steps -----------------------------------------------------------------------

    def put(self, name: str, content: str | bytes) -> str:
        """Place a file on the share; returns its path in the guest (e.g. for ``dpkg -i``
        or ``install -m 0644 PATH /etc/pmemd.yaml`` in a step)."""
        if not STEP_NAME.fullmatch(name):
            raise ValueError(f"bad file name {name!r}")
        path = self.share / "files" / name
        path.parent.mkdir(exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        return f"{SHARE_MOUNT}/files/{name}"

    def _send_step(self, script: str, name: str | None) -> str:
        if self._booted == 0:
            raise VMError("no boot has reached the step runner yet (call wait_boot)")
        label = name or "step"
        if not STEP_NAME.fullmatch(label):
            raise ValueError(f"bad step name {label!r}")
        step = f"{next(self._steps):02d}-{label}"
        directory = self.share / "steps" / step
        directory.mkdir()
        body = script if script.startswith("#!") else "#!/bin/sh\nset -eu\n" + script
        (directory / "script").write_text(body, encoding="utf-8")
        (directory / "script").chmod(0o755)
        assert self._connection is not None
        try:
            self._connection.sendall(f"run {step}\n".encode())
        except OSError as err:
            raise self._fail(f"step {step}: the control port is gone ({err})") from None
        return step

    def _result(self, step: str, status: int) -> Step:
        directory = self.share / "steps" / step

        def read(name: str) -> str:
            path = directory / name
            return path.read_text(errors="replace") if path.exists() else ""

        return Step(step, status, read("stdout"), read("stderr"))

    def run(self, script: str, *, name: str | None = None, timeout: float = 300.0) -> Step:
        """Run ``script`` (``/bin/sh -eu`` unless it has a ``#!``) in the guest, as root,
        in its step directory on the share; its status is not checked (``.check()``)."""
        step = self._send_step(script, name)
        boots = len(self._state.ready)

        def finished(state: _State) -> int | None:
            if len(state.ready) > boots:
                raise self._fail(f"the guest rebooted during step {step}")
            return state.done.get(step)

        return self._result(step, self._wait(f"step {step}", finished, timeout))

    def reboot(self, script: str = "systemctl reboot\n", *, name: str = "reboot",
               timeout: float = 300.0) -> Boot:
        """Run ``script``, which makes the guest reboot itself, and wait for the next boot.
        A script that fails instead is reported with its output."""
        if self._booted == 0:
            raise VMError("no boot has reached the step runner yet (call wait_boot)")
        before = self._state.ready[-1]
        step = self._send_step(script, name)

        def outcome(state: _State) -> str | None:
            if state.done.get(step):
                return "failed"
            return "rebooted" if len(state.ready) > self._booted else None

        if self._wait(f"the guest to reboot after step {step}", outcome, timeout) == "failed":
            self._result(step, self._state.done[step]).check()
        boot = self.wait_boot(timeout)
        if boot.boot_id == before.boot_id:
            raise self._fail(f"step {step}: the boot id did not change ({boot.boot_id})")
        return boot

    def poweroff(self, timeout: float = 120.0) -> int:
        """Shut the guest down cleanly; qemu's exit status."""
        self._send_step("systemctl poweroff\n", "poweroff")
        return self._wait("qemu to exit after poweroff", lambda s: s.exited, timeout)


def main(argv: Sequence[str] | None = None) -> int:
    from tests.vm.image import ImageError, ensure_with_debs

    parser = argparse.ArgumentParser(prog="python -m tests.vm.qemu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deb", type=Path, action="append", default=[],
                        help="boot an image with this .deb installed (repeatable)")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "artifacts"
                        / "interactive", help="where the overlay and share live")
    args = parser.parse_args(argv)
    try:
        image = ensure_with_debs(args.deb)
    except ImageError as err:
        print(f"qemu: {err}", file=sys.stderr)
        return 1
    guest = Guest(image.path, args.workdir)
    args.workdir.mkdir(parents=True, exist_ok=True)
    (guest.share / "steps").mkdir(parents=True, exist_ok=True)
    guest.create_disk()
    try:
        return subprocess.run(guest.argv(None), check=False).returncode
    finally:
        guest.disk.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
