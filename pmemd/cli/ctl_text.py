"""(pure) What ``pmemctl`` prints, from what the service answered: the status laid out as
``hostnamectl`` lays out its own, the regions as a table, the plan as a short report."""

from __future__ import annotations

from pmemd.core.sizes import format_bytes, render_size
from pmemd.core.text import table
from pmemd.service.api import READY, ProblemRow, RegionRow, WarningRow

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

_LABELS = ("State", "Reboot required", "Bootloader", "Config", "Running with", "Next boot",
           "Regions", "Warning", "Problem", "Read error", "Version")
_WIDTH = max(len(label) for label in _LABELS)
_MARKS = {"add": "+", "remove": "-", "keep": "="}


def _field(label: str, value: str) -> str:
    return f"{label.rjust(_WIDTH)}: {value}"


def _rows(value: object) -> list[list[object]]:
    assert isinstance(value, list)
    return value


def render_status(props: Mapping[str, object], regions: Sequence[RegionRow]) -> str:
    """``pmemctl status``: the Manager's properties and how many regions are ready."""
    ready = sum(1 for r in regions if r.state == READY)
    boot = str(props["Bootloader"]) or "none detected"
    reason = str(props["BootloaderReason"])
    lines = [
        _field("State", str(props["State"])),
        _field("Reboot required", "yes" if props["RebootRequired"] else "no"),
        _field("Bootloader", f"{boot} ({reason})" if reason else boot),
        _field("Config", str(props["ConfigPath"])),
        _field("Running with", " ".join(map(str, _rows(props["CurrentMemmap"])))
               or "no memmap= option"),
        _field("Next boot", " ".join(map(str, _rows(props["DesiredMemmap"])))
               or "no memmap= option"),
        _field("Regions", f"{len(regions)} configured, {ready} ready"),
    ]
    lines += [_field("Warning", WarningRow.read(row).message)
              for row in _rows(props["Warnings"])]
    lines += [_field("Problem", ProblemRow.read(row).render())
              for row in _rows(props["Problems"])]
    if props["ReadError"]:
        lines.append(_field("Read error", str(props["ReadError"])))
    trial, why = str(props.get("Trial", "none")), str(props.get("TrialReason", ""))
    if trial != "none":
        lines.append(_field("Trial boot", f"{trial}: {why}" if why else trial))
    lines.append(_field("Version", str(props["Version"])))
    return "\n".join(lines) + "\n"


def render_regions(regions: Sequence[Mapping[str, object]]) -> str:
    """``pmemctl regions``: one line per region (its Region properties), then why any is
    not ready."""
    if not regions:
        return "No regions configured.\n"
    rows = []
    for r in regions:
        offset, size = int(str(r["Offset"])), int(str(r["Size"]))
        rows.append([str(r["Name"]), format_bytes(size), f"0x{offset:x}-0x{offset + size - 1:x}",
                     str(r.get("CharacterDevice") or "") or str(r["Device"]) or "-",
                     str(r["Mountpoint"]) or "-",
                     str(r.get("Mode", "raw")), str(r["FilesystemType"]) or "-",
                     str(r["State"]), "yes" if r["Dax"] else "no"])
    out = [table(["NAME", "SIZE", "RANGE", "DEVICE", "MOUNTPOINT", "MODE", "FS", "STATE", "DAX"],
                 rows, indent="")]
    out += [f"{r['Name']}: {r['StateReason']}" for r in regions if r["State"] != READY]
    return "\n".join(out) + "\n"


def _mode_text(namespace: Mapping[str, Any]) -> str:
    """A plan document's ``namespace`` as ``pmemd plan`` shows it (``fsdax map=dev``)."""
    words = [str(namespace.get("mode", "raw"))]
    if "align" in namespace:
        words.append(f"align={render_size(int(namespace['align']))}")
    if "map" in namespace:
        words.append(f"map={namespace['map']}")
    return " ".join(words)


def render_plan(document: Mapping[str, Any]) -> str:
    """The plan document (``GetPlan``, as ``pmemd plan --json``), as a short report."""
    boot = document.get("bootloader") or {}
    out = [f"Bootloader: {boot.get('reason') or 'unknown'}"]
    regions = document["regions"]
    if regions:
        rows = [[r["name"], f"{r['start_hex']}-{r['end_hex']}", format_bytes(r["size"]),
                 r["memmap"], "yes" if r["on_running_cmdline"] else "no",
                 _mode_text(r.get("namespace") or {})] for r in regions]
        out += ["Regions:", table(["NAME", "RANGE", "SIZE", "MEMMAP", "ACTIVE", "MODE"], rows)]
    else:
        out.append("Regions: none configured")
    out.append("Kernel command line (next boot):")
    out += [f"  {_MARKS.get(c['action'], '?')} {c['argument']}  {c['reason']}"
            for c in document["changes"]] or ["  nothing to change"]
    out += [f"  left alone (not written by pmemd): {f['argument']}"
            for f in document["foreign"]]
    out += [f"Warning: {w['message']}" for w in document["warnings"]]
    out += ["Problem: " + ProblemRow(p["message"], p["key"], p["file"] or "", p["line"] or 0,
                                     p["column"] or 0).render() for p in document["problems"]]
    out.append(f"State: {document['state']}"
               + (" (a reboot is required)" if document["reboot_required"] else ""))
    return "\n".join(out) + "\n"
