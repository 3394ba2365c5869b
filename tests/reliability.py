"""The figures of the README's "Reliability" section, recorded by the tests that earn them.

A test that sweeps crash points, injects I/O faults, races writers, throws hostile input or
loads the service calls :func:`record` with what it tried and what it found; the records
go to ``build/reliability.json`` (one entry per test, replaced when the test runs again)
and ``bench/reliability.py`` turns them into the README's table. A figure is only ever
written by a test that passed its assertions on it: ``record`` is called last.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECORDS = Path(os.environ.get("PMEMD_RELIABILITY", REPO / "build" / "reliability.json"))
KINDS = ("crash points", "I/O faults", "races", "hostile input", "load")


@dataclass(frozen=True)
class Figure:
    kind: str  # one of KINDS
    subject: str  # what was exercised, e.g. "reconcile, update-grub root"
    tried: int  # crash points, faults, writer runs, inputs, calls
    unit: str  # what ``tried`` counts, e.g. "kill points", "inputs"
    lost: int = 0  # data lost (an owned option, the admin's file, a filesystem)
    broken: int = 0  # boot configurations that were neither the old nor the new one
    note: str = ""  # e.g. "8 writers x 20 s", "p99 3.1 ms"


def record(test: str, figure: Figure) -> None:
    """Keep ``figure`` as the finding of ``test`` (its pytest node id)."""
    if figure.kind not in KINDS:
        raise ValueError(f"unknown kind {figure.kind!r}: one of {KINDS}")
    RECORDS.parent.mkdir(parents=True, exist_ok=True)
    with open(RECORDS, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        text = handle.read()
        records = json.loads(text) if text.strip() else {}
        records[test] = asdict(figure)
        handle.seek(0)
        handle.truncate()
        json.dump(records, handle, indent=1, sort_keys=True)
        handle.write("\n")


def load() -> dict[str, Figure]:
    if not RECORDS.exists():
        return {}
    return {test: Figure(**fields) for test, fields in
            json.loads(RECORDS.read_text(encoding="utf-8")).items()}
