"""What the bootloader side did, rendered: ``pmemd reconcile`` and ``--remove-all`` as text
(with ``--dry-run``, the exact diffs and commands) and as stable JSON, and the bootloader
lines and document ``pmemd plan`` adds to the plan (:mod:`pmemd.core.report`)."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from pmemd.boot.backends.base import Backend, BootWrite, FileWrite, NextBoot, tool_argv
from pmemd.core.plan import Plan, PlanState
from pmemd.core.report import CHANGE_MARK, DOCUMENT_VERSION, plan_document

if TYPE_CHECKING:
    from pmemd.boot.reconcile import Outcome
    from pmemd.boot.removal import Removal
    from pmemd.boot.view import BootView


def render_boot_lines(view: BootView) -> list[str]:
    """For ``pmemd plan``: the bootloader found (and why) and its next boot."""
    if view.detection.backend is None:
        return [f"Boot:     no bootloader detected: {view.detection.reason}",
                "          (changes are judged against the running command line)"]
    lines = [f"Boot:     {view.detection.reason}"]
    if view.next_boot is not None:
        lines.append(f"          next boot: {view.next_boot.describe()}")
    chosen = view.detection.backend.kind
    others = [p for p in view.detection.probes if p.kind is not chosen]
    if others:
        lines.append("          also considered:")
        lines.extend(f"            {p.kind.value}: "
                     + ("fits too: " if p.backend is not None else "does not fit: ")
                     + p.reason for p in others)
    return lines


def plan_with_boot_document(plan: Plan, view: BootView) -> dict[str, Any]:
    """The ``pmemd plan --json`` document (also D-Bus ``GetPlan``)."""
    return {**plan_document(plan), "bootloader": boot_document(view)}


def boot_document(view: BootView) -> dict[str, Any]:
    boot = view.next_boot
    return {
        "backend": None if view.detection.backend is None else view.detection.backend.kind.value,
        "reason": view.detection.reason,
        "candidates": [{"backend": p.kind.value, "fits": p.backend is not None,
                        "reason": p.reason} for p in view.detection.probes],
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
    out += [f"  {CHANGE_MARK[c.action]} {c.argument.ljust(width)}  {c.reason}" for c in changes]
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
    trial = outcome.trial
    if trial is not None:
        out.append(f"Trial boot: {trial.message}")
    if trial is not None and trial.action == "armed":
        out.append(f"  {'would boot' if would else 'the next boot boots'} once with "
                   f"{' '.join(trial.trial.options) or 'none of pmemd options'}; the default "
                   f"entry keeps {' '.join(outcome.owned) or 'none of them'}")
    elif outcome.applied:
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
        "trial": None if outcome.trial is None else {
            "action": outcome.trial.action, "message": outcome.trial.message,
            "state": outcome.trial.trial.state.value, "reason": outcome.trial.trial.reason,
            "options": list(outcome.trial.trial.options)},
    }


def render_removal_text(removal: Removal) -> str:
    """What ``pmemd reconcile --remove-all`` took off the next boot (or, dry, would)."""
    would = removal.dry_run
    trial = []
    if removal.trial is not None:
        trial = [f"Trial boot ({removal.trial.state.value}, {' '.join(removal.trial.options)}): "
                 + ("would take its entry and one-time selection away" if would else
                    "its entry and one-time selection taken away")]
    if removal.detection is None:
        return "\n".join([*trial, f"Nothing {'else ' if trial else ''}to remove: "
                          f"{removal.state_file} records no kernel option as pmemd's "
                          "in the default entry."]) + "\n"
    out = [*trial, f"Bootloader: {removal.detection.reason}"]
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
        "trial": None if removal.trial is None else {
            "state": removal.trial.state.value, "options": list(removal.trial.options)},
    }
