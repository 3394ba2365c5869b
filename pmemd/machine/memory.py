"""The memory map of a machine: the firmware's (``/sys/firmware/memmap``, what placing
regions reads) and this boot's (``/proc/iomem``, root only), typed by
:mod:`pmemd.core.e820` and read as the kernel reads a firmware table
(:mod:`pmemd.core.e820_table`). The generator reads the firmware map through here alone."""

from __future__ import annotations

from pmemd.core.e820 import (
    E820ParseError,
    MemoryMap,
    SysfsMemmapEntry,
    parse_iomem,
    parse_sysfs_memmap,
)
from pmemd.core.e820_table import normalise
from pmemd.errors import MachineError
from pmemd.machine.root import Machine


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
        table = normalise(parse_sysfs_memmap(entries))
    except E820ParseError as err:
        raise MachineError(f"{base}/{err}") from None
    if not table.entries:
        raise MachineError(f"{base}: empty firmware memory map")
    return MemoryMap(firmware=table.entries, firmware_source=str(base),
                     oddities=table.oddities)


def read_memory_map(machine: Machine) -> MemoryMap:
    """The firmware map from sysfs and, when readable as root, this boot's map from iomem."""
    firmware = read_firmware_map(machine)
    try:
        text = machine.read_text(machine.iomem)
    except MachineError:
        text = None
    try:
        this_boot = parse_iomem(text) if text is not None else None
    except E820ParseError as err:
        raise MachineError(f"{machine.iomem}:{err.line}: {err}") from None
    if this_boot is None:
        return firmware
    return MemoryMap(
        firmware=firmware.firmware,
        firmware_source=firmware.firmware_source,
        edited=this_boot.entries,
        edited_source=str(machine.iomem),
        kernel_image=this_boot.kernel_image,
        oddities=firmware.oddities,
    )
