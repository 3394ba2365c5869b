"""Read a machine (under its root) into the model the pure planner works on."""

from __future__ import annotations

from pathlib import Path

from pmemd.cmdline import parse_cmdline
from pmemd.config import parse_config
from pmemd.errors import ConfigError, Location, MachineError, Problem
from pmemd.kernel import newest, parse_kernel_config
from pmemd.machine import CONFIG_PATH, Machine
from pmemd.memmap import (
    MemmapParseError,
    SysfsMemmapEntry,
    iomem_to_map,
    parse_iomem,
    parse_sysfs_memmap,
)
from pmemd.model import (
    Cmdline,
    Config,
    DeviceFacts,
    KernelInfo,
    MachineFacts,
    MemoryMap,
    MemRange,
)


def read_config(machine: Machine, path: Path | None = None) -> Config:
    """The config at ``path`` (default: ``/etc/pmemd.yaml`` under the machine's root)."""
    target = path if path is not None else machine.config
    shown = str(target) if path is not None else machine.display(CONFIG_PATH)
    try:
        with target.open("rb") as handle:
            data = handle.read(2 << 20)  # enough to tell "too large" without reading it all
    except FileNotFoundError:
        raise ConfigError([Problem("no such file; create it (see pmemd.yaml(5))",
                                   location=Location(shown, 1, 1))]) from None
    except IsADirectoryError:
        raise ConfigError([Problem("is a directory, not a config file",
                                   location=Location(shown, 1, 1))]) from None
    except PermissionError:
        raise MachineError(f"{shown}: permission denied") from None
    return parse_config(data, shown)


def read_firmware_map(machine: Machine) -> MemoryMap:
    """The firmware map from sysfs alone (all that placing regions needs: the generator
    reads only this, so its output does not depend on this boot's iomem)."""
    base = machine.firmware_memmap
    if not base.is_dir():
        raise MachineError(
            f"{base}: no firmware memory map (not an x86 machine, or sysfs not mounted); "
            "paste the boot log instead: pmemd memmap --dmesg FILE")
    entries = []
    for directory in sorted(base.iterdir(), key=lambda p: (len(p.name), p.name)):
        fields = {}
        for name in ("start", "end", "type"):
            text = machine.read_text(directory / name)
            if text is None:
                raise MachineError(f"{directory / name}: missing")
            fields[name] = text
        entries.append(SysfsMemmapEntry(directory.name, **fields))
    try:
        firmware = parse_sysfs_memmap(entries)
    except MemmapParseError as err:
        raise MachineError(f"{base}/{err}") from None
    if not firmware:
        raise MachineError(f"{base}: empty firmware memory map")
    return MemoryMap(firmware=firmware,
                     firmware_source=machine.display("/sys/firmware/memmap"))


def read_memory_map(machine: Machine) -> MemoryMap:
    """The firmware map from sysfs and, when readable as root, this boot's map from iomem."""
    firmware = read_firmware_map(machine)
    edited = None
    image: tuple[MemRange, ...] = ()
    try:
        iomem_text = machine.read_text(machine.iomem)
    except MachineError:
        iomem_text = None
    if iomem_text is not None:
        try:
            nodes = parse_iomem(iomem_text)
        except MemmapParseError as err:
            raise MachineError(f"{machine.iomem}:{err.line}: {err}") from None
        if nodes is not None:
            edited, image = iomem_to_map(nodes)
    return MemoryMap(
        firmware=firmware.firmware,
        firmware_source=firmware.firmware_source,
        edited=edited,
        edited_source=machine.display("/proc/iomem") if edited is not None else None,
        kernel_image=image,
    )


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
        reason = "newest in /boot, the bootloader default"
    else:
        next_release, reason = running, "the running kernel: no kernel image in /boot"
    config = None
    config_path = None
    if next_release is not None:
        config_path = f"/boot/config-{next_release}"
        text = machine.read_text(machine.path(config_path))
        config = parse_kernel_config(text) if text is not None else None
    return KernelInfo(running, next_release, reason, config,
                      machine.display(config_path) if config_path else None)


def read_mem_total(machine: Machine) -> int | None:
    text = machine.read_text(machine.meminfo)
    for line in (text or "").splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) * 1024
    return None


def read_device_facts(machine: Machine) -> DeviceFacts:
    """pmem devices from sysfs and the mounts (none when the tree has no mountinfo)."""
    from pmemd.dax import read_mounts
    from pmemd.devices import read_devices

    mounts = read_mounts(machine) if machine.mountinfo.exists() else ()
    return read_devices(machine, mounts)


def read_facts(machine: Machine, *, devices: bool = False) -> MachineFacts:
    """``devices``: also read pmem devices and mounts, so the plan can say whether each
    region's device is there and mounted with DAX."""
    return MachineFacts(
        memory=read_memory_map(machine),
        cmdline=read_cmdline(machine),
        kernel=read_kernel_info(machine),
        mem_total=read_mem_total(machine),
        devices=read_device_facts(machine) if devices else None,
    )
