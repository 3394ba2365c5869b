"""What the trial entry carries besides the options tried: pmemd's mark, ``panic=`` (a
panicking trial boot resets into the default entry), and dracut's own way out where dracut
builds the initramfs (initramfs-tools panics when it gives up, which ``panic=`` covers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmemd.boot.trial import trial_args, uses_dracut
from pmemd.core.cmdline import carries, parse_cmdline
from pmemd.core.trial import mark_for
from pmemd.machine.root import Machine

DESIRED = ("memmap=4G!12G", "nokaslr")


@pytest.mark.parametrize(("dracut", "expected"), [
    (False, (*DESIRED, mark_for("feedc0de"), "panic=10")),
    (True, (*DESIRED, mark_for("feedc0de"), "panic=10", "rd.shell=0", "rd.emergency=reboot")),
])
def test_the_trial_entry_carries_what_brings_a_failed_boot_back(
        tmp_path: Path, dracut: bool, expected: tuple[str, ...]) -> None:
    if dracut:
        (tmp_path / "usr/lib/dracut").mkdir(parents=True)
    machine = Machine(tmp_path)
    assert uses_dracut(machine) is dracut
    tried = trial_args(DESIRED, "feedc0de", dracut=uses_dracut(machine))
    assert tried == expected
    line = parse_cmdline(" ".join(tried))  # as the kernel reads the entry's command line
    assert all(carries(line, arg) for arg in tried)
