"""SUSE and EL7: GRUB_CMDLINE_LINUX edited in place in /etc/default/grub (every other byte
kept), `grub2-mkconfig -o` the right file, the generated config read back; the recording
stand-in generates grub.cfg from the files as grub2-mkconfig does."""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from pmemd.boot.reconcile import Outcome, reconcile
from pmemd.core.plan import PlanState
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from tests.boot.conftest import (
    config_text,
    killed_at_rename,
    snapshot,
    standin_calls,
    with_standins,
    write_config,
)
from tests.conftest import run_pmemd

Tree = Callable[..., Path]
M1 = "memmap=4G!12G"
CONFIG = config_text(("data", "4G", "12G"), bootloader="grub2-mkconfig")


@pytest.fixture
def make(tree: Tree) -> Iterator[Callable[[str, bool], Path]]:
    with ExitStack() as stack:

        def build(distro: str, efi: bool) -> Path:
            root = tree(distro, config=CONFIG)
            firmware = root / "sys/firmware/efi"
            if efi:
                firmware.mkdir(parents=True, exist_ok=True)
            elif firmware.exists():
                shutil.rmtree(firmware)
            return stack.enter_context(with_standins(root, "grub2-mkconfig"))

        yield build


def run(root: Path, runner: Runner | None = None) -> Outcome:
    return reconcile(Machine(root), runner or Runner())


def changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.ndiff(before.splitlines(), after.splitlines())
            if line.startswith(("+ ", "- "))]


@pytest.mark.parametrize(("distro", "efi", "output"), [
    ("sle15", True, "/boot/grub2/grub.cfg"),  # the EFI grub.cfg is a stub
    ("sle15", False, "/boot/grub2/grub.cfg"),
    ("el7", True, "/boot/efi/EFI/centos/grub.cfg"),  # EL7: the full config beside the binary
    ("el7", False, "/boot/grub2/grub.cfg"),
])
def test_in_place_edit_and_the_right_output(make: Callable[[str, bool], Path], distro: str,
                                            efi: bool, output: str) -> None:
    root = make(distro, efi)
    default_grub = (root / "etc/default/grub").read_text()
    untouched = {p: (root / p).read_bytes() for p in
                 ("boot/efi/EFI/opensuse/grub.cfg", "boot/grub2/grub.cfg",
                  "boot/efi/EFI/centos/grub.cfg") if (root / p).exists() and p != output[1:]}
    runner = Runner()
    outcome = run(root, runner)
    assert runner.recorded == [("chroot", str(root), "/sbin/grub2-mkconfig", "-o", output)]
    assert standin_calls(root) == [["-o", output]]
    diff = changed_lines(default_grub, (root / "etc/default/grub").read_text())
    assert len(diff) == 2 and all("GRUB_CMDLINE_LINUX=" in line for line in diff)
    assert diff[1].endswith(f' {M1}"') or diff[1].endswith(f'"{M1}"')
    generated = (root / output[1:]).read_text()
    assert f"{M1}" in generated
    assert outcome.state is PlanState.REBOOT_REQUIRED
    assert outcome.next_boot.source.endswith(output)
    for path, content in untouched.items():
        assert (root / path).read_bytes() == content, path


def test_second_run_runs_nothing(make: Callable[[str, bool], Path]) -> None:
    root = make("sle15", True)
    run(root)
    before = snapshot(root)
    runner = Runner()
    run(root, runner)
    assert runner.recorded == [] and len(standin_calls(root)) == 1
    assert snapshot(root) == before


def test_remove_gives_back_the_admins_file_byte_for_byte(make: Callable[[str, bool], Path]
                                                         ) -> None:
    root = make("el7", False)
    original = (root / "etc/default/grub").read_bytes()
    run(root)
    write_config(root, config_text(bootloader="grub2-mkconfig"))
    outcome = run(root)
    assert (root / "etc/default/grub").read_bytes() == original
    assert M1 not in (root / "boot/grub2/grub.cfg").read_text()
    assert outcome.owned == ()


def test_a_broken_default_grub_fails_the_tool_and_is_restored(
        make: Callable[[str, bool], Path]) -> None:
    root = make("sle15", True)
    path = root / "etc/default/grub"
    path.write_text(path.read_text() + "GRUB_GFXMODE=auto)\n")  # an admin's typo
    before = {p: (root / p).read_bytes() for p in ("etc/default/grub", "boot/grub2/grub.cfg")}
    done = run_pmemd("reconcile", "--root", str(root))
    assert done.returncode == 1
    assert "grub2-mkconfig -o /boot/grub2/grub.cfg failed" in done.stderr
    assert "Syntax error" in done.stderr  # the shell's own message, through the tool
    assert {p: (root / p).read_bytes() for p in before} == before


def test_an_expanded_value_is_refused_with_its_line(make: Callable[[str, bool], Path]) -> None:
    root = make("el7", False)
    path = root / "etc/default/grub"
    text = path.read_text().replace('GRUB_CMDLINE_LINUX="crashkernel=auto',
                                    'GRUB_CMDLINE_LINUX="$EXTRA crashkernel=auto')
    path.write_text(text)
    done = run_pmemd("reconcile", "--root", str(root))
    assert done.returncode == 1
    assert f"{path}:6: GRUB_CMDLINE_LINUX uses shell expansion" in done.stderr
    assert path.read_text() == text and standin_calls(root) == []


def test_pmemds_option_lost_from_default_grub_is_put_back(make: Callable[[str, bool], Path]
                                                          ) -> None:
    """grub.cfg still carries it, but the next grub2-mkconfig (a kernel update) would not."""
    root = make("sle15", False)
    run(root)
    path = root / "etc/default/grub"
    path.write_text(path.read_text().replace(f'GRUB_CMDLINE_LINUX="{M1}"',
                                             'GRUB_CMDLINE_LINUX=""'))
    outcome = run(root)
    assert outcome.applied and f'GRUB_CMDLINE_LINUX="{M1}"' in path.read_text()
    assert len(standin_calls(root)) == 2


def test_killed_while_replacing_default_grub_leaves_the_admins_file_whole(
        make: Callable[[str, bool], Path]) -> None:
    root = make("sle15", True)
    path = root / "etc/default/grub"
    before = path.read_bytes()
    killed_at_rename(path, "reconcile", "--root", str(root))
    assert path.read_bytes() == before
    assert len(list(path.parent.glob(".grub.*.tmp"))) == 1  # the new one, never renamed
    assert standin_calls(root) == []
    outcome = run(root)  # the next run completes the change and sweeps the leftover
    assert outcome.applied and not list(path.parent.glob(".grub.*.tmp"))
