"""The end-to-end journey's parts, shared by ``tests/vm/test_e2e.py`` and the demo
(``tests/vm/demo.py``): pmemd's .deb built from this checkout, the guest image with it
installed, configs as a user writes them, and a guest that reads back what a user would
look at (``e2e_guest.py`` runs in the guest and answers in JSON).

Nothing here imports pytest: the demo runs with Debian's python3 alone.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.vm.qemu import Boot, Guest, Step, VMError

REPO = Path(__file__).resolve().parents[2]
GUEST_TOOL = Path(__file__).resolve().with_name("e2e_guest.py")
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
MANAGER = "io.pmemd1 /io/pmemd1 io.pmemd1.Manager"
# update-grub alone takes about 12 s in the guest under TCG; a busy host makes it slower.
RECONCILE_TIMEOUT = 600.0
# The bootloader files a reconcile may write (Debian: pmemd's drop-in, then update-grub).
GRUB_FILES = ("/boot/grub/grub.cfg", "/etc/default/grub", "/etc/default/grub.d/pmemd.cfg")
# After pmemd-reconcile.service has asked systemd to reboot, the step checks that the
# system is going down; a reconcile that did not reboot fails the step at once.
REBOOTING = """\
systemctl restart pmemd-reconcile.service || true
state=$(systemctl is-system-running || true)
if [ "$state" != stopping ]; then
    echo "pmemd-reconcile.service did not reboot the machine (system: $state)" >&2
    journalctl -b -u pmemd-reconcile.service -o cat --no-pager | tail -n 30 >&2
    exit 1
fi
"""


class DebError(Exception):
    """pmemd's .deb could not be built; carries the build's output."""


def build_pmemd_deb(directory: Path) -> Path:
    """``packaging/build-deb`` (what ``make deb`` runs) on this checkout, into ``directory``."""
    done = subprocess.run([str(REPO / "packaging" / "build-deb")], capture_output=True,
                          text=True, timeout=1200, check=False,
                          env={**os.environ, "PATH": SYSTEM_PATH,
                               "PMEMD_DEB_OUT": str(directory)})
    debs = sorted(directory.glob("pmemd_*_all.deb"))
    if done.returncode != 0 or len(debs) != 1:
        raise DebError(f"packaging/build-deb exited {done.returncode}:\n{done.stderr}")
    return debs[0]


def cockpit_deb(pmemd_deb: Path) -> Path:
    """pmemd-cockpit's .deb, built beside ``pmemd_deb`` by the same build."""
    found = sorted(pmemd_deb.parent.glob("pmemd-cockpit_*_all.deb"))
    if len(found) != 1:
        raise DebError(f"packaging/build-deb left no pmemd-cockpit .deb beside {pmemd_deb}")
    return found[0]


# --- configs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionSpec:
    """One region of /etc/pmemd.yaml, with a filesystem."""

    name: str
    size: str
    offset: str
    fstype: str
    mountpoint: str
    on_boot: str = "recreate"
    options: tuple[str, ...] = ()

    @property
    def memmap(self) -> str:
        """The option pmemd writes for it (the sizes here are already canonical)."""
        return f"memmap={self.size}!{self.offset}"

    def yaml(self) -> str:
        options = f"      options: [{', '.join(self.options)}]\n" if self.options else ""
        return (f"  - name: {self.name}\n"
                f"    size: {self.size}\n"
                f"    offset: {self.offset}\n"
                f"    filesystem:\n"
                f"      type: {self.fstype}\n"
                f"      mountpoint: {self.mountpoint}\n"
                f"{options}"
                f"      on-boot: {self.on_boot}\n")


def render_config(regions: Sequence[RegionSpec], *, reboot: str, trial: str | None = None,
                  comment: str = "") -> str:
    """``trial``: ``boot.trial`` (None: not written, pmemd's default, auto)."""
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    return (f"{head}version: 1\n"
            f"boot:\n"
            f"  bootloader: auto\n"
            f"  reboot: {reboot}\n"
            + (f"  trial: {trial}\n" if trial is not None else "")
            + ("regions:\n" + "".join(r.yaml() for r in regions) if regions
               else "regions: []\n"))


def default_entry_options(grub_cfg: str) -> list[str]:
    """The kernel command line of grub.cfg's first menu entry (Debian's default '0')."""
    for line in grub_cfg.splitlines():
        words = line.split()
        if words[:1] == ["linux"]:
            return words[2:]
    raise AssertionError("grub.cfg has no linux line")


# --- the guest ----------------------------------------------------------------------------


class Journey:
    """A guest with pmemd installed, driven the way its admin would drive it."""

    def __init__(self, guest: Guest) -> None:
        self.guest = guest
        self.tool = ""

    def first_boot(self, timeout: float = 600.0) -> Boot:
        boot = self.guest.wait_boot(timeout)
        self.tool = "/usr/bin/python3 " + self.guest.put(GUEST_TOOL.name, GUEST_TOOL.read_bytes())
        return boot

    def run(self, script: str, name: str, timeout: float = 300.0) -> Step:
        return self.guest.run(script, name=name, timeout=timeout)

    def check(self, script: str, name: str, timeout: float = 300.0) -> Step:
        return self.run(script, name, timeout).check()

    def snapshot(self, name: str, *, wait: bool = True) -> dict[str, Any]:
        """What a user would look at (see ``e2e_guest.py``); ``wait``: after systemd has
        finished starting up (``systemctl is-system-running --wait``)."""
        step = self.check(f"{self.tool} snapshot{' --wait' if wait else ''}\n", name)
        document: dict[str, Any] = json.loads(step.stdout)
        return document

    def roundtrip(self, mountpoint: str, token: str, name: str) -> dict[str, Any]:
        """Write ``token`` into a file on ``mountpoint`` and read it back (and statx)."""
        step = self.check(f"{self.tool} roundtrip {shlex.join([mountpoint, token])}\n", name)
        document: dict[str, Any] = json.loads(step.stdout)
        return document

    def read_token(self, mountpoint: str, name: str) -> str | None:
        step = self.run(f"cat {shlex.quote(mountpoint + '/e2e-token')}\n", name)
        return step.stdout if step.status == 0 else None

    def install_config(self, text: str, name: str = "config") -> None:
        path = self.guest.put("pmemd.yaml", text)
        self.check(f"install -m 0644 {path} /etc/pmemd.yaml\n", name)

    def files(self, paths: Iterable[str], name: str = "files") -> dict[str, bytes | None]:
        """The guest's files, byte for byte (``None``: absent), through the share."""
        paths = list(paths)
        step = self.check("".join(f"if [ -e {p} ]; then cp --parents {p} .; fi\n"
                                  for p in paths), name)
        directory = self.guest.share / "steps" / step.name
        return {p: (directory / p.lstrip("/")).read_bytes()
                if (directory / p.lstrip("/")).exists() else None for p in paths}

    def property(self, name: str) -> str:
        """An io.pmemd1.Manager property as busctl prints it (``b true``)."""
        return self.check(f"busctl get-property {MANAGER} {name}\n",
                          f"busctl-{name}").stdout.strip()

    def reconcile_unit(self, name: str) -> dict[str, str]:
        """Restart pmemd-reconcile.service as its boot would run it; its result, exit status
        and what this run of it logged."""
        step = self.run(
            "systemctl restart pmemd-reconcile.service || true\n"
            "systemctl show -P Result pmemd-reconcile.service\n"
            "systemctl show -P ExecMainStatus pmemd-reconcile.service\n"
            "echo ---\n"
            "journalctl -b -o cat --no-pager _SYSTEMD_INVOCATION_ID="
            "$(systemctl show -P InvocationID pmemd-reconcile.service)\n",
            name, RECONCILE_TIMEOUT).check()
        head, _, journal = step.stdout.partition("---\n")
        result, status = head.split()
        return {"result": result, "status": status, "journal": journal}

    def reconcile_reboots(self, name: str) -> Boot:
        """pmemd-reconcile.service, run as at boot, reboots the machine itself (boot.reboot:
        auto); the next boot."""
        return self.guest.reboot(REBOOTING, name=name, timeout=RECONCILE_TIMEOUT)

    def journal(self, name: str, *args: str) -> str:
        return self.check(shlex.join(["journalctl", "--no-pager", "-o", "cat", *args]) + "\n",
                          name).stdout


class ConsoleSlices:
    """Cut the guest's serial console into one file per part of the journey."""

    def __init__(self, console: Path) -> None:
        self.console = console
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.console.stat().st_size if self.console.exists() else 0

    def save(self, destination: Path) -> None:
        with self.console.open("rb") as log:
            log.seek(self.offset)
            destination.write_bytes(log.read())


def memmap_options(cmdline: Sequence[str]) -> list[str]:
    return [word for word in cmdline if word.startswith("memmap=")]


def mount_at(snapshot: dict[str, Any], target: str) -> dict[str, Any] | None:
    found = [m for m in snapshot["mounts"] if m["target"] == target]
    return found[-1] if found else None


def device_at(snapshot: dict[str, Any], address: int) -> tuple[str, dict[str, Any]] | None:
    """The /dev/pmem device whose namespace starts at ``address`` (sysfs, not pmemd)."""
    for name, device in snapshot["devices"].items():
        if device["resource"] is not None and int(device["resource"], 16) == address:
            return name, device
    return None


def assert_mounted_with_dax(snapshot: dict[str, Any], region: RegionSpec) -> None:
    """The device at the region's address (sysfs) is mounted at its mountpoint, DAX on."""
    found = device_at(snapshot, size_bytes(region.offset))
    assert found is not None, f"no /dev/pmem device at {region.offset}: {snapshot['devices']}"
    mount = mount_at(snapshot, region.mountpoint)
    assert mount is not None and mount["source"] == f"/dev/{found[0]}", snapshot["mounts"]
    assert "dax=always" in mount["options"], mount


def failed_units(snapshot: dict[str, Any]) -> list[str]:
    return [line.split()[0] for line in snapshot["failed_units"] if line.strip()]


def require(condition: bool, message: str) -> None:
    """For the demo: stop with ``message`` (the tests assert instead)."""
    if not condition:
        raise VMError(message)


SIZE = re.compile(r"([0-9]+)([KMG])")
_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def size_bytes(text: str) -> int:
    """``512M`` → bytes (the sizes this module writes; pmemd's parser is what is tested)."""
    match = SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a size this test writes: {text!r}")
    return int(match[1]) * _UNITS[match[2]]
