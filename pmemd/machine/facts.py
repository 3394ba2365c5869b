"""Read a machine (under its root) into what the pure core works on: the config, the memory
map, the command line, the kernel, pmem devices and mounts (:class:`MachineFacts`).

A file that cannot be read is a :class:`~pmemd.errors.MachineError` naming it; a config
with problems is not an error here (:class:`~pmemd.core.config.ParsedConfig` carries them,
and the caller decides)."""

from __future__ import annotations

from pathlib import Path

from pmemd.core.cmdline import Cmdline, parse_cmdline
from pmemd.core.config import ParsedConfig, parse_config
from pmemd.core.devices import DeviceFacts
from pmemd.core.facts import MachineFacts
from pmemd.core.kernel import KernelInfo, newest, parse_kernel_config
from pmemd.core.mounts import MountEntry, MountinfoError, parse_mountinfo
from pmemd.core.pmd import PmdCheck, parse_check
from pmemd.core.yamltree import MAX_CONFIG_BYTES
from pmemd.errors import (
    FileMissing,
    FileTooLarge,
    Location,
    MachineError,
    NotRegularFile,
    Problem,
)
from pmemd.machine.files import read_regular
from pmemd.machine.memory import read_memory_map
from pmemd.machine.root import BOOT_DIR, Machine


def read_config(machine: Machine, path: Path | None = None) -> ParsedConfig:
    """The config at ``path`` (default: ``/etc/pmemd.yaml`` under the machine's root), as
    far as it is valid and usable. A config that is not there as a regular file of at most
    :data:`~pmemd.core.yamltree.MAX_CONFIG_BYTES` is a problem of the config ("create it",
    "is a FIFO"); a file pmemd may not read is a :class:`MachineError`."""
    target = path if path is not None else machine.config
    shown = str(target)
    try:
        data = read_regular(target, MAX_CONFIG_BYTES)
    except FileMissing:
        problem = Problem("no such file; create it (see pmemd.yaml(5))",
                          location=Location(shown, 1, 1))
        return ParsedConfig(shown, (problem,), None)
    except (NotRegularFile, FileTooLarge) as err:
        return ParsedConfig(shown, (Problem(err.reason, location=Location(shown, 1, 1)),), None)
    return parse_config(data, shown)


def read_cmdline(machine: Machine) -> Cmdline:
    text = machine.read_text(machine.cmdline, missing_ok=False)
    assert text is not None
    return parse_cmdline(text.strip())


def read_kernel_info(machine: Machine) -> KernelInfo:
    running = machine.read_text(machine.osrelease)
    running = running.strip() if running else None
    installed = []
    if machine.boot.is_dir():
        installed = [p.name.removeprefix("vmlinuz-") for p in machine.boot.glob("vmlinuz-*")]
    next_release = newest(installed)
    if next_release is not None:
        reason = f"newest in {BOOT_DIR}, the bootloader default"
    else:
        next_release, reason = running, f"the running kernel: no kernel image in {BOOT_DIR}"
    if next_release is None:
        return KernelInfo(running, None, reason, None, None)
    config_path = machine.boot / f"config-{next_release}"
    text = machine.read_text(config_path)
    config = parse_kernel_config(text) if text is not None else None
    return KernelInfo(running, next_release, reason, config, str(config_path))


def read_mounts(machine: Machine) -> tuple[MountEntry, ...]:
    text = machine.read_text(machine.mountinfo)
    if text is None:
        raise MachineError(f"{machine.mountinfo}: missing (is /proc mounted?)")
    try:
        return parse_mountinfo(text)
    except MountinfoError as err:
        raise MachineError(f"{machine.mountinfo}: mountinfo {err}") from None


def read_device_facts(machine: Machine) -> DeviceFacts:
    """pmem devices from sysfs and the mounts (none when the tree has no mountinfo)."""
    from pmemd.machine.sysfs import read_devices  # only the readers of devices pay for it

    mounts = read_mounts(machine) if machine.mountinfo.exists() else ()
    return read_devices(machine, mounts)


def read_facts(machine: Machine, *, devices: bool = False) -> MachineFacts:
    """``devices``: also read pmem devices, mounts and the boot history, so the plan can say
    whether each region's device is there and mounted with DAX, and what make-filesystem
    did on this boot."""
    from pmemd.machine.history import read_history  # likewise

    return MachineFacts(
        memory=read_memory_map(machine),
        cmdline=read_cmdline(machine),
        kernel=read_kernel_info(machine),
        devices=read_device_facts(machine) if devices else None,
        history=read_history(machine) if devices else None,
        memory_block=read_memory_block(machine),
        pmd_checks=read_pmd_checks(machine) if devices else (),
    )


def read_memory_block(machine: Machine) -> int | None:
    """The size of the blocks the kernel hot-plugs memory in (hexadecimal in sysfs);
    ``None`` when the file is missing or unreadable."""
    text = machine.read_text(machine.memory_block_size)
    try:
        return int(text.strip(), 16) if text else None
    except ValueError:
        return None


def read_pmd_checks(machine: Machine) -> tuple[PmdCheck, ...]:
    """What verify-dax recorded about each region's PMD faults on this boot."""
    try:
        files = sorted(machine.pmd_checks.iterdir())
    except OSError:  # none yet (no region verified), or not readable
        return ()
    found = (parse_check(machine.read_text(f) or "") for f in files
             if not f.name.startswith("."))
    return tuple(c for c in found if c is not None)
