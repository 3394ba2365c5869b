"""Every boot is recorded, also when ``pmemd reconcile`` is answered from its converged stamp
(the boot's fast path, which imports nothing heavy): the first run of a boot adds the boot's
line as the full path would, later runs of the same boot change nothing."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from pmemd.core.ranges import MemRange
from pmemd.fastpath.converged import replay_converged
from pmemd.machine.history import read_history
from pmemd.machine.root import Machine
from tests.boot.conftest import config_text, machine_tree
from tests.conftest import REPO, run_pmemd

GiB = 1 << 30
# What the machine's own iomem says: memmap=4G!12G made 12G-16G persistent.
PMEM = (MemRange.sized(12 * GiB, 4 * GiB),)
ENTRY = """
import sys
from pmemd.cli.entry import main
status = main()
print("imported:", sorted(m for m in sys.modules if m in ("dataclasses", "pmemd.cli.pmemd",
                                                          "pmemd.machine.history")),
      file=sys.stderr)
sys.exit(status)
"""


def fast(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", ENTRY, "reconcile", "--root", str(root)],
                          cwd=REPO, capture_output=True, text=True, check=False, timeout=120)


def new_boot(machine: Machine) -> str:
    boot_id = str(uuid.uuid4())
    machine.boot_id.parent.mkdir(parents=True, exist_ok=True)
    machine.boot_id.write_text(boot_id + "\n")
    return boot_id


def converged(tmp_path: Path) -> Machine:
    """A systemd-boot server booted with memmap=4G!12G, reconciled until converged."""
    root = machine_tree(tmp_path / "root", "debian12-systemd-boot", "server-16g-memmap",
                        config_text(("data", "4G", "12G")))
    machine = Machine(root)
    new_boot(machine)
    for _ in range(3):
        assert run_pmemd("reconcile", "--root", str(root)).returncode in (0, 5)
    assert machine.converged_stamp.exists()
    return machine


def test_the_fast_path_records_each_new_boot_once(tmp_path: Path) -> None:
    machine = converged(tmp_path)
    first = machine.boot_id.read_text().strip()
    second = new_boot(machine)
    done = fast(machine.root)
    assert done.returncode == 0, done.stderr
    assert "imported: []" in done.stderr  # still the fast path
    history = read_history(machine)
    assert [(b.boot_id, b.pmem) for b in history.boots] == [(first, PMEM), (second, PMEM)]
    recorded = machine.boot_history.read_bytes()
    stat = machine.boot_history.stat()
    assert fast(machine.root).returncode == 0  # the same boot again: nothing written
    assert machine.boot_history.read_bytes() == recorded
    assert machine.boot_history.stat().st_mtime_ns == stat.st_mtime_ns


def test_the_fast_path_reads_this_boots_ranges_not_the_last_ones(tmp_path: Path) -> None:
    machine = converged(tmp_path)
    third = new_boot(machine)
    # iomem read without root shows every address as 0; no nvdimm bus: unknown.
    machine.iomem.write_text("".join(
        f"00000000-00000000 : {line.split(' : ', 1)[1]}\n"
        for line in machine.iomem.read_text().splitlines()))
    (machine.root / "sys" / "bus").rename(machine.root / "sys" / "bus-absent")
    assert replay_converged(["reconcile", "--root", str(machine.root)]) == 0
    assert read_history(machine).boots[-1].boot_id == third
    assert read_history(machine).boots[-1].pmem is None


def test_a_history_the_fast_path_cannot_read_is_left_to_the_full_path(tmp_path: Path) -> None:
    machine = converged(tmp_path)
    machine.boot_history.write_text("something else\n")
    boot_id = new_boot(machine)
    assert replay_converged(["reconcile", "--root", str(machine.root)]) is None
    assert machine.boot_history.read_text() == "something else\n"
    assert "'pmemd.cli.pmemd'" in fast(machine.root).stderr  # the full path ran ...
    history = read_history(machine)  # ... and started the history again
    assert history.problem is None
    assert [(b.boot_id, b.pmem) for b in history.boots] == [(boot_id, PMEM)]
    assert machine.converged_stamp.exists()


WRITER = """
import sys, time
from pathlib import Path
from pmemd.machine.history import record_filesystem
from pmemd.machine.root import Machine
from pmemd.core.history import FsBasis, FsRecord
from pmemd.core.ranges import MemRange
root, boot_id, number, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():
    time.sleep(0.001)
for attempt in range(10):
    record_filesystem(Machine(Path(root)), FsRecord(
        boot_id, MemRange.sized((4 + number) << 30, 1 << 30), "xfs", f"u{number}-{attempt}",
        f"r{number}", "made", FsBasis.BLANK, "test"))
"""


def test_make_filesystem_units_recording_at_once_lose_nothing(tmp_path: Path) -> None:
    """At boot the make-filesystem units of all regions run at the same time."""
    machine = converged(tmp_path)
    boot_id = machine.boot_id.read_text().strip()
    go = tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(machine.root), boot_id,
                                 str(n), str(go)], cwd=REPO) for n in range(12)]
    go.touch()
    assert [w.wait(timeout=120) for w in writers] == [0] * 12
    history = read_history(machine)
    assert sorted(f.uuid for f in history.filesystems) == sorted(f"u{n}-9" for n in range(12))
    assert [b.boot_id for b in history.boots] == [boot_id]
