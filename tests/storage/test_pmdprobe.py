"""The PMD probe where it cannot check: a machine without tracefs, and one whose kernel has
no fs_dax tracepoint. It says why, as a warning (never a failure), leaves no probe file on
the mount and no tracefs instance behind. (Where it can check — a real DAX mount — is the
end-to-end guest's: tests/vm/test_e2e.py.)"""

from __future__ import annotations

import os
from pathlib import Path

from pmemd.core.mounts import MountEntry
from pmemd.core.pmd import PmdResult
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.storage.pmdprobe import PROBE_PREFIX, probe_pmd

MOUNT = MountEntry("259:0", "/pmem", "ext4", "/dev/pmem0", ("rw",), ("dax=always",))


def machine_with_mount(tmp_path: Path) -> Machine:
    (tmp_path / "pmem").mkdir()
    return Machine(tmp_path)


def test_without_tracefs_the_faults_are_not_checked_and_it_says_why(tmp_path: Path) -> None:
    machine = machine_with_mount(tmp_path)
    found = probe_pmd(machine, Runner(), "data", MOUNT)
    assert found.result is PmdResult.UNCHECKED and not found.degraded
    assert found.reason == ("PMD faults not checked: /sys/kernel/tracing does not exist "
                            "(a kernel without tracefs)")
    assert list((tmp_path / "pmem").iterdir()) == []


def test_without_the_tracepoint_the_instance_is_removed_and_nothing_left(
        tmp_path: Path) -> None:
    machine = machine_with_mount(tmp_path)
    instances = tmp_path / "sys/kernel/tracing/instances"
    instances.mkdir(parents=True)
    (tmp_path / "pmem" / f"{PROBE_PREFIX}{os.getpid()}").write_text("left by a killed probe")
    found = probe_pmd(machine, Runner(), "data", MOUNT)
    assert found.result is PmdResult.UNCHECKED
    assert found.reason == ("PMD faults not checked: the kernel has no "
                            "fs_dax:dax_pmd_fault_done tracepoint")
    assert list(instances.iterdir()) == []
    assert list((tmp_path / "pmem").iterdir()) == []
