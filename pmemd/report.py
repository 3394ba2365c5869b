"""(pure) Render plans and memory maps as readable text and as stable JSON documents."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pmemd.bootloader.base import Backend, BootWrite, FileWrite, NextBoot, tool_argv
from pmemd.memmap import aligned_parts, render_memmap_arg, subtract
from pmemd.model import (
    ChangeAction,
    Config,
    E820Entry,
    Filesystem,
    FsRecord,
    KernelInfo,
    MemoryMap,
    MemRange,
    Plan,
    PlanState,
    PmemDevice,
    RegionDevice,
)
from pmemd.sizes import format_bytes, render_size

if TYPE_CHECKING:
    from pmemd.reconcile import BootView, Outcome, Removal

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


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
              for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def dump_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def _range_json(rng: MemRange) -> dict[str, Any]:
    return {"start": rng.start, "end": rng.last, "size": rng.size,
            "start_hex": f"0x{rng.start:x}", "end_hex": f"0x{rng.last:x}"}


def _entry_json(entry: E820Entry) -> dict[str, Any]:
    return {**_range_json(entry.range), "type": entry.kind.value, "label": entry.label}


# --- memory map ---------------------------------------------------------------------------


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


# --- plan ---------------------------------------------------------------------------------


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


_MARK = {ChangeAction.ADD: "+", ChangeAction.REMOVE: "-", ChangeAction.KEEP: "="}


def render_plan_text(plan: Plan, config: Config, kernel: KernelInfo, machine: str,
                     boot: Sequence[str] = ()) -> str:
    """``boot``: lines saying which bootloader was found and what its next boot carries."""
    out = [f"Config:   {config.source.path} ({len(config.regions)} regions)",
           f"Machine:  {machine}, {format_bytes(plan.memory_total)} usable RAM",
           f"Kernel:   running {kernel.running_release or 'unknown'}; next boot "
           f"{kernel.next_release or 'unknown'} ({kernel.next_release_reason})", *boot]
    if plan.regions:
        rows = [[r.region.name, str(r.range), format_bytes(r.range.size), r.placement.value,
                 r.argument, "yes" if r.on_running_cmdline else "no",
                 _fs_text(r.region.filesystem)] for r in plan.regions]
        out += ["", "Regions:", table(
            ["NAME", "RANGE", "SIZE", "PLACED", "MEMMAP", "ACTIVE", "FILESYSTEM"], rows)]
    else:
        out += ["", "Regions: none configured"]
    moving = [c for c in plan.changes if c.action is not ChangeAction.KEEP]
    out += ["", "Kernel command line:"]
    if not plan.changes:
        out.append("  nothing to change")
    width = max((len(c.argument) for c in plan.changes), default=0)
    for change in plan.changes:
        out.append(f"  {_MARK[change.action]} {change.argument.ljust(width)}  {change.reason}")
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
        out += ["  " + p.render().replace("\n", "\n  ") for p in plan.problems]
    out += ["", f"State: {STATE_TEXT[plan.state]}"]
    if moving and not plan.problems:
        out.append(f"       {len(moving)} command-line change(s); a reboot makes them take effect")
    return "\n".join(out) + "\n"


def _fs_text(fs: Filesystem | None) -> str:
    if fs is None:
        return "-"
    return f"{fs.type.value} {fs.mountpoint} ({fs.on_boot.value})"


# --- reconcile ----------------------------------------------------------------------------


def render_boot_lines(view: BootView) -> list[str]:
    """For ``pmemd plan``: the bootloader found (and why) and its next boot."""
    if view.detection.backend is None:
        return [f"Boot:     no bootloader detected: {view.detection.reason}",
                "          (changes are judged against the running command line)"]
    lines = [f"Boot:     {view.detection.reason}"]
    if view.next_boot is not None:
        lines.append(f"          next boot: {view.next_boot.describe()}")
    return lines


def plan_with_boot_document(plan: Plan, view: BootView) -> dict[str, Any]:
    """The ``pmemd plan --json`` document (also D-Bus ``GetPlan``)."""
    return {**plan_document(plan), "bootloader": boot_document(view)}


def boot_document(view: BootView) -> dict[str, Any]:
    boot = view.next_boot
    return {
        "backend": None if view.detection.backend is None else view.detection.backend.kind.value,
        "reason": view.detection.reason,
        "next_boot": None if boot is None else _next_boot_json(boot),
        "owned": list(view.owned),
    }


def _next_boot_json(boot: NextBoot) -> dict[str, Any]:
    return {"source": boot.source, "entry": boot.entry, "kernel": boot.kernel, "how": boot.note,
            "cmdline": None if boot.cmdline is None else
            " ".join(a.text for a in boot.cmdline.args)}


RECONCILE_STATE_TEXT = {
    PlanState.CONVERGED: "converged: the next boot and the running kernel carry the configured "
                         "options",
    PlanState.CHANGES_PENDING: "changes pending: run without --dry-run to make them",
}


def _reconcile_state_text(outcome: Outcome) -> str:
    if outcome.state in RECONCILE_STATE_TEXT:
        return RECONCILE_STATE_TEXT[outcome.state]
    return f"{outcome.state.value}: {outcome.reboot.message}"


def _diff(change: FileWrite) -> list[str]:
    lines = difflib.unified_diff(
        (change.old or "").splitlines(keepends=True), (change.new or "").splitlines(keepends=True),
        f"{change.shown}" + ("" if change.old is not None else " (absent)"),
        f"{change.shown}" + ("" if change.new is not None else " (removed)"))
    return ["    " + line.rstrip("\n") for line in lines]


def _write_lines(write: BootWrite, backend: Backend, would: bool) -> list[str]:
    """The files written (with their diffs when ``would``) and the commands run."""
    out = []
    for change in write.files:
        verb = ("Would remove" if would else "Removed") if change.new is None else (
            "Would write" if would else "Wrote")
        out.append(f"{verb} {change.shown}" + (":" if would else ""))
        if would:
            out += _diff(change)
    out += [f"{'Would run' if would else 'Ran'}: {' '.join(tool_argv(backend.machine, argv))}"
            for argv in write.commands]
    return out


def _write_json(write: BootWrite, backend: Backend | None) -> dict[str, Any]:
    """The files and commands of ``write`` (no backend: nothing was to run)."""
    return {
        "files": [{"path": f.shown, "action": "remove" if f.new is None else "write"}
                  for f in write.files],
        "commands": [] if backend is None else [list(tool_argv(backend.machine, argv))
                                                for argv in write.commands],
    }


def render_reconcile_text(outcome: Outcome) -> str:
    """What ``pmemd reconcile`` found and did; with ``--dry-run``, the exact files and
    commands it would change."""
    out = [f"Bootloader: {outcome.detection.reason}",
           f"Next boot:  {outcome.next_boot.describe()}", "Kernel command line (next boot):"]
    changes = outcome.before.changes
    width = max((len(c.argument) for c in changes), default=0)
    out += [f"  {_MARK[c.action]} {c.argument.ljust(width)}  {c.reason}" for c in changes]
    if not changes:
        out.append("  no options configured")
    out += [f"  left alone (not written by pmemd): {f.argument}" for f in outcome.before.foreign]
    if outcome.retired:
        out.append("  still on the running kernel until the next boot: "
                   + " ".join(outcome.retired))
    would = outcome.dry_run
    handover = outcome.handover
    if handover is not None and handover.backend is not None:
        assert handover.detection is not None
        out.append(f"Handing over from {handover.detection.reason}: pmemd's options "
                   f"({' '.join(handover.removed)}) {'would come' if would else 'came'} off "
                   "there first")
        out += _write_lines(handover.write, handover.backend, would)
    out += _write_lines(outcome.write, outcome.backend, would)
    if outcome.applied:
        added = " ".join(outcome.edit.add) or "nothing new"
        out.append(f"Checked: the default entry now carries {added}"
                   + (f" and no longer {' '.join(outcome.edit.remove)}"
                      if outcome.edit.remove else ""))
    if would and not outcome.write.empty:
        owned = " ".join(outcome.owned) or "nothing"
        out.append(f"Would record in {outcome.state_file}: pmemd owns {owned}")
    elif outcome.state_changed:
        owned = " ".join(outcome.owned) or "nothing"
        out.append(f"Recorded in {outcome.state_file}: pmemd owns {owned}")
    if outcome.write.empty and not outcome.applied:
        out.append("Nothing to change in the bootloader configuration.")
    out.append(f"State: {_reconcile_state_text(outcome)}")
    return "\n".join(out) + "\n"


def reconcile_document(outcome: Outcome) -> dict[str, Any]:
    boot = outcome.next_boot
    return {
        "version": DOCUMENT_VERSION,
        "state": outcome.state.value,
        "dry_run": outcome.dry_run,
        "applied": outcome.applied,
        "bootloader": {"backend": outcome.backend.kind.value,
                       "reason": outcome.detection.reason},
        "next_boot": _next_boot_json(boot),
        "changes": [{"action": c.action.value, "argument": c.argument, "reason": c.reason}
                    for c in outcome.before.changes],
        **_write_json(outcome.write, outcome.backend),
        "reboot": {"action": outcome.reboot.action.value, "message": outcome.reboot.message},
        "owned": list(outcome.owned),
        "retired": list(outcome.retired),
        "warnings": [{"code": w.code, "region": w.region, "message": w.message}
                     for w in outcome.plan.warnings],
        "handover": removal_document(outcome.handover) if outcome.handover else None,
    }


def render_removal_text(removal: Removal) -> str:
    """What ``pmemd reconcile --remove-all`` took off the next boot (or, dry, would)."""
    if removal.detection is None:
        return (f"Nothing to remove: {removal.state_file} records no kernel option as "
                "pmemd's.\n")
    would = removal.dry_run
    out = [f"Bootloader: {removal.detection.reason}"]
    if removal.next_boot is not None:
        out.append(f"Next boot:  {removal.next_boot.describe()}")
    out.append(f"pmemd's options ({'to remove' if would else 'removed'}): "
               + " ".join(removal.removed))
    if removal.backend is not None:
        out += _write_lines(removal.write, removal.backend, would)
    if removal.applied:
        out.append(f"Checked: the default entry no longer carries {' '.join(removal.removed)}")
    elif removal.write.empty:
        out.append("The bootloader configuration already lacks them.")
    if would:
        out.append(f"Would record in {removal.state_file}: pmemd owns nothing")
    elif removal.state_changed:
        out.append(f"Recorded in {removal.state_file}: pmemd owns nothing")
    if removal.applied:
        out.append("Reboot required: the running kernel keeps the reserved memory until then.")
    return "\n".join(out) + "\n"


def removal_document(removal: Removal) -> dict[str, Any]:
    backend = removal.backend
    return {
        "version": DOCUMENT_VERSION,
        "dry_run": removal.dry_run,
        "applied": removal.applied,
        "removed": list(removal.removed),
        "bootloader": None if removal.detection is None else {
            "backend": backend.kind.value if backend is not None else None,
            "reason": removal.detection.reason},
        "next_boot": None if removal.next_boot is None else _next_boot_json(removal.next_boot),
        **_write_json(removal.write, backend),
        "retired": list(removal.retired),
    }
