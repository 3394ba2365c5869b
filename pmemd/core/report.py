"""(pure) Render plans and memory maps as readable text and as stable JSON documents
(``pmemd plan``, ``pmemd memmap``, D-Bus ``GetPlan``); what the bootloader does is rendered
by :mod:`pmemd.boot.report`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pmemd.core.devices import PmemDevice, RegionDevice
from pmemd.core.e820 import E820Entry, MemoryMap
from pmemd.core.history import FsRecord
from pmemd.core.kernel import KernelInfo
from pmemd.core.memmap import render_memmap_arg
from pmemd.core.model import Config, Filesystem
from pmemd.core.modes import describe_mode, mode_json
from pmemd.core.plan import ChangeAction, Plan, PlanState
from pmemd.core.ranges import MemRange, aligned_parts, subtract
from pmemd.core.sizes import format_bytes, render_size
from pmemd.core.text import table
from pmemd.errors import PROBLEMS_SHOWN, ConfigError, PmemdError, Problem, render_problems

DOCUMENT_VERSION = 1
STATE_TEXT = {
    PlanState.CONVERGED: "converged: the command line already carries the configured regions",
    PlanState.CHANGES_PENDING: "changes pending: the boot configuration must change, then reboot",
    PlanState.REBOOT_REQUIRED: "reboot required: the boot configuration is ready, the running "
                               "kernel predates it",
    PlanState.DEGRADED: "degraded: the command line is right, but a region's device is "
                        "missing, not DAX or not mounted (see Devices)",
    PlanState.INVALID_CONFIG: "invalid: the config cannot be applied to this machine",
}


def dump_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def error_document(err: PmemdError, status: int) -> dict[str, Any]:
    """What ``--json`` prints when a command fails: the error's kind (its class, e.g.
    ``ConfigError``, ``MachineError``), its message as on stderr, where it is (the first
    problem's place, for a config), the first problems and how many more, the exit status."""
    problems = err.problems if isinstance(err, ConfigError) else ()
    message = err.render() if isinstance(err, ConfigError) else str(err)
    return failure_document(type(err).__name__, message, status, problems)


def failure_document(kind: str, message: str, status: int,
                     problems: Sequence[Problem] = ()) -> dict[str, Any]:
    place = next((p.location for p in problems if p.location is not None), None)
    return {"version": DOCUMENT_VERSION, "error": {
        "kind": kind,
        "message": message,
        "location": None if place is None else {"file": place.path, "line": place.line,
                                                 "column": place.column},
        "problems": [p.as_dict() for p in problems[:PROBLEMS_SHOWN]],
        "more_problems": max(len(problems) - PROBLEMS_SHOWN, 0),
        "status": status,
    }}


def _range_json(rng: MemRange) -> dict[str, Any]:
    return {"start": rng.start, "end": rng.last, "size": rng.size,
            "start_hex": f"0x{rng.start:x}", "end_hex": f"0x{rng.last:x}"}


def _entry_json(entry: E820Entry) -> dict[str, Any]:
    return {**_range_json(entry.range), "type": entry.kind.value, "label": entry.label}


def candidates(memory: MemoryMap, alignment: int) -> tuple[MemRange, ...]:
    """Aligned usable ranges not already persistent on this boot, largest first."""
    return aligned_parts(subtract(memory.usable, memory.persistent), alignment)


def memmap_document(memory: MemoryMap, alignment: int) -> dict[str, Any]:
    return {
        "version": DOCUMENT_VERSION,
        "firmware_source": memory.firmware_source,
        "firmware": [_entry_json(e) for e in memory.firmware],
        "edited_source": memory.edited_source,
        "edited": None if memory.edited is None else [_entry_json(e) for e in memory.edited],
        "usable_total": memory.usable_total,
        "persistent": [_range_json(r) for r in memory.persistent],
        "kernel_image": [_range_json(r) for r in memory.kernel_image],
        "alignment": alignment,
        "candidates": [{**_range_json(r), "memmap": render_memmap_arg(r)}
                       for r in candidates(memory, alignment)],
    }


def _entry_rows(entries: Sequence[E820Entry]) -> list[list[str]]:
    return [[f"0x{e.range.start:016x}", f"0x{e.range.last:016x}", format_bytes(e.range.size),
             e.label] for e in entries]


def render_memmap_text(memory: MemoryMap, alignment: int) -> str:
    out = [f"Firmware memory map ({memory.firmware_source}):",
           table(["START", "END", "SIZE", "TYPE"], _entry_rows(memory.firmware)),
           "",
           f"Usable RAM: {format_bytes(memory.usable_total)} in {len(memory.usable)} ranges"]
    if memory.edited is None:
        out.append("This boot's map: unknown (/proc/iomem addresses need root, or paste "
                   "dmesg with --dmesg)")
    else:
        persistent = memory.persistent
        listed = ", ".join(r.describe() for r in persistent) if persistent else "none"
        out.append(f"Persistent memory on this boot ({memory.edited_source}): {listed}")
    if memory.kernel_image:
        span = MemRange(memory.kernel_image[0].start, max(r.end for r in memory.kernel_image))
        out.append(f"Kernel image on this boot: {span.describe()}")
    found = candidates(memory, alignment)
    out += ["", f"Largest ranges that could hold pmem (aligned to {render_size(alignment)}):"]
    if found:
        rows = [[str(r), format_bytes(r.size), render_memmap_arg(r)] for r in found]
        out.append(table(["RANGE", "SIZE", "MEMMAP"], rows))
    else:
        out.append("  none")
    return "\n".join(out) + "\n"


def _fs_json(fs: Filesystem | None) -> dict[str, Any] | None:
    if fs is None:
        return None
    return {"type": fs.type.value, "mountpoint": fs.mountpoint, "options": list(fs.options),
            "on_boot": fs.on_boot.value}


def plan_document(plan: Plan) -> dict[str, Any]:
    return {
        "version": DOCUMENT_VERSION,
        "state": plan.state.value,
        "reboot_required": plan.reboot_required,
        "regions": [{
            "name": r.region.name,
            **_range_json(r.range),
            "placement": r.placement.value,
            "memmap": r.argument,
            "on_running_cmdline": r.on_running_cmdline,
            "namespace": mode_json(r.region),
            "filesystem": _fs_json(r.region.filesystem),
        } for r in plan.regions],
        "desired": list(plan.desired_args),
        "running": list(plan.running_args),
        "changes": [{"action": c.action.value, "argument": c.argument, "reason": c.reason}
                    for c in plan.changes],
        "foreign": [{"argument": f.argument, "item": f.item.text, "kind": f.item.kind.value,
                     "explanation": f.explanation} for f in plan.foreign],
        "memory": {"usable_total": plan.memory_total, "left_for_system": plan.memory_left},
        "warnings": [{"code": w.code, "region": w.region, "message": w.message}
                     for w in plan.warnings],
        "problems": [p.as_dict() for p in plan.problems],
        "devices": [_region_device_json(d) for d in plan.devices],
        "unmatched_devices": [_device_json(d) for d in plan.unmatched_devices],
        "filesystems": [_fs_record_json(f) for f in plan.filesystems],
    }


def _fs_record_json(record: FsRecord) -> dict[str, Any]:
    return {"region": record.region, **_range_json(record.range), "type": record.fstype,
            "uuid": record.uuid, "action": record.action, "basis": record.basis.value,
            "reason": record.reason, "boot_id": record.boot_id}


def _device_json(device: PmemDevice) -> dict[str, Any]:
    return {"name": device.name, "namespace": device.namespace, "region": device.region,
            "range": None if device.range is None else _range_json(device.range),
            "size": device.size, "dev": device.dev, "dax": device.dax, "mode": device.mode}


def _region_device_json(status: RegionDevice) -> dict[str, Any]:
    mount = status.mount
    return {
        "region": status.region,
        **_range_json(status.range),
        "state": status.state.value,
        "reason": status.reason,
        "device": None if status.device is None else _device_json(status.device),
        "mount": None if mount is None else {
            "mountpoint": mount.mountpoint, "fstype": mount.fstype, "source": mount.source,
            "options": list(mount.super_options)},
    }


CHANGE_MARK = {ChangeAction.ADD: "+", ChangeAction.REMOVE: "-", ChangeAction.KEEP: "="}


def render_plan_text(plan: Plan, config: Config, kernel: KernelInfo, machine: str,
                     boot: Sequence[str] = ()) -> str:
    """``boot``: lines saying which bootloader was found and what its next boot carries."""
    out = [f"Config:   {config.source.path} ({len(config.regions)} regions)",
           f"Machine:  {machine}, {format_bytes(plan.memory_total)} usable RAM",
           f"Kernel:   running {kernel.running_release or 'unknown'}; next boot "
           f"{kernel.next_release or 'unknown'} ({kernel.next_release_reason})", *boot]
    if plan.regions:
        rows = [[r.region.name, str(r.range), format_bytes(r.range.size), r.placement.value,
                 r.argument, "yes" if r.on_running_cmdline else "no", describe_mode(r.region),
                 _fs_text(r.region.filesystem)] for r in plan.regions]
        out += ["", "Regions:", table(
            ["NAME", "RANGE", "SIZE", "PLACED", "MEMMAP", "ACTIVE", "MODE", "FILESYSTEM"],
            rows)]
    else:
        out += ["", "Regions: none configured"]
    moving = [c for c in plan.changes if c.action is not ChangeAction.KEEP]
    out += ["", "Kernel command line:"]
    if not plan.changes:
        out.append("  nothing to change")
    width = max((len(c.argument) for c in plan.changes), default=0)
    for change in plan.changes:
        mark = CHANGE_MARK[change.action]
        out.append(f"  {mark} {change.argument.ljust(width)}  {change.reason}")
    if plan.foreign:
        out += ["", "Left alone (not written by pmemd):"]
        out += [f"  {f.argument}: {f.explanation}" for f in plan.foreign]
    if plan.regions:
        out += ["", f"Memory left to the system: {format_bytes(plan.memory_left)} of "
                    f"{format_bytes(plan.memory_total)} (minimum "
                    f"{format_bytes(config.memory.min_system_ram)})"]
    if plan.warnings:
        out += ["", "Warnings:"]
        out += [f"  ! {w.message}" for w in plan.warnings]
    if plan.devices:
        rows = [[d.region, d.device.name if d.device else "-", d.state.value, d.reason]
                for d in plan.devices]
        out += ["", "Devices (matched by physical address):",
                table(["REGION", "DEVICE", "STATE", "DETAIL"], rows)]
    if plan.filesystems:
        rows = [[f.region, f"{f.action} {f.fstype}", f.uuid or "-", f.reason]
                for f in plan.filesystems]
        out += ["", "Filesystems on this boot (pmemd make-filesystem, boot history):",
                table(["REGION", "DONE", "UUID", "WHY"], rows)]
    if plan.unmatched_devices:
        out += ["", "Devices at no configured region's address:"]
        out += [f"  {d.name} ({d.namespace}): "
                + (d.range.describe() if d.range else "address unknown")
                for d in plan.unmatched_devices]
    if plan.problems:
        out += ["", "Problems:"]
        out.append("  " + render_problems(plan.problems).replace("\n", "\n  "))
    out += ["", f"State: {STATE_TEXT[plan.state]}"]
    if moving and not plan.problems:
        out.append(f"       {len(moving)} command-line change(s); a reboot makes them take effect")
    return "\n".join(out) + "\n"


def _fs_text(fs: Filesystem | None) -> str:
    if fs is None:
        return "-"
    return f"{fs.type.value} {fs.mountpoint} ({fs.on_boot.value})"
