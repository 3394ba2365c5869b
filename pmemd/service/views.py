"""What the service's objects show: one reading of the machine (:class:`Status`) as the
typed properties of ``io.pmemd1.Manager`` and of each ``io.pmemd1.Region``, with the
field names of :mod:`pmemd.service.api` (tests hold the two together)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pmemd import __version__
from pmemd.core.devices import DaxCharDevice, DeviceState
from pmemd.core.e820 import E820Entry
from pmemd.core.facts import MachineFacts
from pmemd.core.memmap import memmap_args
from pmemd.core.model import DAX_DEVICE_MODES, NamespaceMode
from pmemd.errors import Problem
from pmemd.machine.root import DEV_DIR
from pmemd.service.api import MapEntry, ProblemRow, WarningRow
from pmemd.service.status import Status, overall_state


@dataclass(frozen=True)
class ManagerView:
    """``io.pmemd1.Manager``'s properties; field names are the D-Bus property names."""

    Version: str
    State: str
    RebootRequired: bool
    Bootloader: str
    BootloaderReason: str
    ConfigPath: str
    CurrentMemmap: list[str]
    DesiredMemmap: list[str]
    Warnings: list[list[object]]  # WarningRow.wire()
    Problems: list[list[object]]  # ProblemRow.wire()
    ReadError: str
    Trial: str
    TrialReason: str
    KernelImage: list[list[int]]  # (start, size) of each part


@dataclass(frozen=True)
class RegionView:
    """``io.pmemd1.Region``'s properties."""

    Name: str
    Size: int
    Offset: int
    Memmap: str
    Device: str
    Mountpoint: str
    FilesystemType: str
    State: str
    StateReason: str
    Dax: bool
    Mode: str
    PageMap: str
    Align: int
    CharacterDevice: str


def problem_row(problem: Problem) -> ProblemRow:
    loc = problem.location
    return ProblemRow(problem.message, problem.key, loc.path if loc else "",
                      loc.line if loc else 0, loc.column if loc else 0)


def manager_view(status: Status) -> ManagerView:
    result, boot = status.plan, status.boot
    warnings = [WarningRow(w.code, w.region or "", w.message)
                for w in (result.warnings if result else ())]
    if status.guard:
        warnings.append(WarningRow("reboot-guard", "", status.guard))
    backend = boot.detection.backend if boot is not None else None
    return ManagerView(
        Version=__version__,
        State=overall_state(status).value,
        RebootRequired=bool(result and result.reboot_required),
        Bootloader=backend.kind.value if backend is not None else "",
        BootloaderReason=boot.detection.reason if boot is not None else "",
        ConfigPath=status.config_path,
        CurrentMemmap=list(result.running_args) if result else running_memmap(status.facts),
        DesiredMemmap=list(result.desired_args) if result else [],
        Warnings=[w.wire() for w in warnings],
        Problems=[problem_row(p).wire() for p in status.problems],
        ReadError=status.machine_error or "",
        Trial=status.trial.state.value,
        TrialReason=status.trial.reason,
        KernelImage=kernel_image(status.facts),
    )


def kernel_image(facts: MachineFacts | None) -> list[list[int]]:
    """Where this boot's kernel image lies (``/proc/iomem``'s Kernel code, rodata, data and
    bss), as ``(start, size)`` rows; none when unknown."""
    image = facts.memory.kernel_image if facts is not None else ()
    return [[part.start, part.size] for part in image]


def running_memmap(facts: MachineFacts | None) -> list[str]:
    """This boot's memmap= options, as the plan lists them (``running_args``)."""
    return [a.text for a in memmap_args(facts.cmdline)] if facts is not None else []


def region_views(status: Status) -> dict[str, RegionView]:
    if status.plan is None:
        return {}
    found = {d.region: d for d in status.plan.devices}
    views = {}
    for placed in status.plan.regions:
        region = placed.region
        fs = region.filesystem
        device = found.get(region.name)
        dev = device.device if device is not None else None
        # a no-pmd mount is DAX, only slower
        ready = device is not None and device.state in (DeviceState.READY, DeviceState.NO_PMD)
        views[region.name] = RegionView(
            Name=region.name,
            Size=placed.range.size,
            Offset=placed.range.start,
            Memmap=placed.argument,
            Device=f"{DEV_DIR}/{dev.name}" if dev is not None else "",
            Mountpoint=fs.mountpoint if fs is not None else "",
            FilesystemType=fs.type.value if fs is not None else "",
            State=device.state.value if device is not None else DeviceState.UNKNOWN.value,
            StateReason=device.reason if device is not None else "devices were not read",
            Dax=bool(ready and dev is not None and dev.dax),
            Mode=region.mode.value,
            PageMap="" if region.mode is NamespaceMode.RAW else region.map.value,
            Align=region.align if region.mode in DAX_DEVICE_MODES else 0,
            CharacterDevice=_char_device(device.chardev if device is not None else None),
        )
    return views


def _char_device(chardev: DaxCharDevice | None) -> str:
    """A devdax region's /dev/daxX.Y (also while its memory is system RAM: the node stays)."""
    return f"{DEV_DIR}/{chardev.name}" if chardev is not None and chardev.dev else ""


def changed_properties(old: object | None, new: object) -> dict[str, Any]:
    """The properties (dataclass fields) whose values differ between two views."""
    now: dict[str, Any] = asdict(new)  # type: ignore[call-overload]
    if old is None:
        return now
    before: dict[str, Any] = asdict(old)  # type: ignore[call-overload]
    return {name: value for name, value in now.items() if before.get(name) != value}


def map_entries(entries: tuple[E820Entry, ...] | None) -> list[list[object]]:
    """``GetMemoryMap``'s rows of one map (none when it is unknown)."""
    return [MapEntry(e.range.start, e.range.size, e.kind.value, e.label).wire()
            for e in entries or ()]
