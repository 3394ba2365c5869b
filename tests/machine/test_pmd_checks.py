"""What verify-dax recorded under /run/pmemd/pmd is what the status reads: records parse,
a torn or foreign file is no record, no directory is no records."""

from __future__ import annotations

from pathlib import Path

from pmemd.core.pmd import PmdCheck, PmdResult
from pmemd.machine.atomic import write_atomic
from pmemd.machine.facts import read_pmd_checks
from pmemd.machine.root import Machine

FELL = PmdCheck("data", "/pmem", "259:0", PmdResult.FALLBACK, "fell back", 1, 512)


def test_records_are_read_and_junk_is_not(tmp_path: Path) -> None:
    machine = Machine(tmp_path)
    assert read_pmd_checks(machine) == ()
    write_atomic(machine.pmd_check("data"), FELL.render())
    write_atomic(machine.pmd_check("scratch"), "{not json")
    write_atomic(machine.pmd_checks / ".data.pmemd-1-x.tmp", FELL.render())
    assert read_pmd_checks(machine) == (FELL,)
    assert machine.pmd_check("data") == tmp_path / "run/pmemd/pmd/data"
