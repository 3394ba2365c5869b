"""systemd-boot / kernel-install: /etc/kernel/cmdline and every entry's options, on the
entries the real kernel-install wrote (tests/fixtures/bootloader/debian12-systemd-boot)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from pmemd.boot.reconcile import Outcome, reconcile
from pmemd.core.plan import PlanState
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from tests.boot.conftest import BACKUPS, config_text, entry_options, snapshot, write_config
from tests.conftest import run_pmemd

Tree = Callable[..., Path]
ENTRIES = "boot/efi/loader/entries"
M1, M2 = "memmap=4G!12G", "memmap=2G!10G"


def run(root: Path, runner: Runner | None = None, **kwargs: object) -> Outcome:
    return reconcile(Machine(root), runner or Runner(), **kwargs)  # type: ignore[arg-type]


def options(root: Path) -> dict[str, str]:
    return entry_options(root, ENTRIES)


def test_add_writes_cmdline_and_every_entry_and_runs_nothing(tree: Tree) -> None:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G"),
                                                            ("cache", "2G", "10G")))
    before = snapshot(root)
    runner = Runner()
    outcome = run(root, runner)
    assert outcome.applied and outcome.state is PlanState.REBOOT_REQUIRED
    assert runner.recorded == []
    cmdline = (root / "etc/kernel/cmdline").read_text()
    assert cmdline == before["etc/kernel/cmdline"].decode().replace("quiet\n",
                                                                     f"quiet {M2} {M1}\n")
    for line in options(root).values():
        assert line.endswith(f"systemd.machine_id=4c3f0e7b2a9d4e51b1a3c6d8e9f01234 {M2} {M1}")
    after = snapshot(root)
    changed = {k for k, v in after.items() if before.get(k) != v}
    written = {"etc/kernel/cmdline", *(f"{ENTRIES}/{n}" for n in options(root))}
    backups = {f"{name}{suffix}" for name in written for suffix in BACKUPS}
    assert {c for c in changed if not c.startswith(("var/lib/pmemd", "run/"))} == \
        written | backups
    assert all(after[f"{name}{suffix}"] == before[name] for name in written
               for suffix in BACKUPS)


def test_second_run_changes_nothing(tree: Tree) -> None:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G")))
    run(root)
    before = snapshot(root)
    runner = Runner()
    outcome = run(root, runner)
    assert not outcome.applied and outcome.write.empty and runner.recorded == []
    assert snapshot(root) == before


def test_resize_then_remove_restores_every_byte(tree: Tree) -> None:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G")))
    original = snapshot(root)
    run(root)
    write_config(root, config_text(("data", "2G", "12G")))
    run(root)
    assert all(line.endswith(" memmap=2G!12G") for line in options(root).values())
    assert M1 not in (root / "etc/kernel/cmdline").read_text()
    write_config(root, config_text())
    outcome = run(root)
    assert outcome.owned == ()
    after = snapshot(root)
    for name in original:
        if name.startswith(("etc/kernel", ENTRIES)):
            assert after[name] == original[name], name


def test_admin_options_and_foreign_memmap_stay(tree: Tree) -> None:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G")))
    foreign = "memmap=64M$0x7c000000"
    for entry in (root / ENTRIES).glob("*.conf"):
        entry.write_text(entry.read_text().replace(" quiet ", f" quiet console=ttyS0 {foreign} "))
    run(root)
    write_config(root, config_text())
    run(root)
    for line in options(root).values():
        assert f"console=ttyS0 {foreign}" in line and "memmap=4G" not in line


def test_missing_etc_kernel_cmdline_is_made_from_what_kernel_install_would_use(
        tree: Tree) -> None:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G")))
    (root / "etc/kernel/cmdline").unlink()
    run(root)
    # /proc/cmdline of the example machine, without BOOT_IMAGE= (as 90-loaderentry drops it)
    assert (root / "etc/kernel/cmdline").read_text() == \
        f"root=UUID=5b2f0d4e-8f0c-4f0e-9c55-3f1d2b7a9e11 ro quiet {M1}\n"


def test_default_entry_follows_loader_conf(tree: Tree) -> None:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G")))
    (root / "boot/efi/loader/loader.conf").write_text("default *6.1.0-26-amd64.conf\n")
    outcome = run(root, dry_run=True)
    assert outcome.next_boot.source.endswith("-6.1.0-26-amd64.conf")
    assert "'default *6.1.0-26-amd64.conf'" in outcome.next_boot.note


def test_dry_run_prints_the_diffs_and_writes_nothing(tree: Tree) -> None:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G")))
    before = snapshot(root)
    done = run_pmemd("reconcile", "--dry-run", "--root", str(root))
    assert done.returncode == 4, done.stderr
    assert snapshot(root) == before
    assert f"Would write {root}/etc/kernel/cmdline:" in done.stdout
    assert f"+root=UUID=eeddd662-a512-429e-b053-0907b36addce ro quiet {M1}" in done.stdout
    assert done.stdout.count("Would write") == 3
    assert "Would run" not in done.stdout


# --- ownership ------------------------------------------------------------------------------


def test_an_option_the_admin_wrote_is_never_taken_for_pmemds(tree: Tree) -> None:
    """The admin had memmap=4G!12G already: pmemd keeps it, does not own it, and leaves it
    when the region goes away."""
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G")))
    for entry in (root / ENTRIES).glob("*.conf"):
        entry.write_text(entry.read_text().replace(" quiet ", f" quiet {M1} "))
    outcome = run(root)
    assert outcome.owned == () and not any(
        f" {M1} {M1}" in line for line in options(root).values())
    write_config(root, config_text())
    run(root)
    assert all(f"quiet {M1} " in line for line in options(root).values())


def test_nokaslr_is_added_and_taken_back_only_when_pmemd_wrote_it(tree: Tree) -> None:
    root = tree("debian12-systemd-boot",
                config=config_text(("data", "4G", "12G"), kaslr="disable"))
    outcome = run(root)
    assert outcome.owned == (M1, "nokaslr")
    assert all(line.endswith(f"{M1} nokaslr") for line in options(root).values())
    write_config(root, config_text(("data", "4G", "12G")))
    outcome = run(root)
    assert [(c.action.value, c.argument) for c in outcome.before.changes] == [
        ("keep", M1), ("remove", "nokaslr")]
    assert not any("nokaslr" in line for line in options(root).values())
    # an admin's own nokaslr stays whatever boot.kaslr says
    for entry in (root / ENTRIES).glob("*.conf"):
        entry.write_text(entry.read_text().replace(" quiet ", " quiet nokaslr "))
    write_config(root, config_text(("data", "4G", "12G"), kaslr="disable"))
    assert run(root).owned == (M1,)
    write_config(root, config_text(("data", "4G", "12G")))
    run(root)
    assert all("quiet nokaslr" in line for line in options(root).values())


def test_removed_options_still_running_keep_the_reboot_required(tree: Tree) -> None:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G")))
    cmdline = root / "proc/cmdline"
    cmdline.write_text(cmdline.read_text().strip() + f" {M1}\n")  # booted with it
    assert run(root).state is PlanState.CONVERGED
    write_config(root, config_text())
    outcome = run(root)
    assert outcome.state is PlanState.REBOOT_REQUIRED and outcome.retired == (M1,)
    again = run(root)  # later, same boot: still the old kernel
    assert again.state is PlanState.REBOOT_REQUIRED and not again.applied
    cmdline.write_text(cmdline.read_text().replace(f" {M1}", ""))  # rebooted
    assert run(root).state is PlanState.CONVERGED


def test_a_corrupt_state_file_is_an_error_and_nothing_is_written(tree: Tree) -> None:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G")))
    state = root / "var/lib/pmemd/state.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"version": 1, "owned": [')
    before = snapshot(root)
    done = run_pmemd("reconcile", "--root", str(root))
    assert done.returncode == 1
    assert f"{state}:1:26: not JSON" in done.stderr and "will not guess" in done.stderr
    assert snapshot(root) == before


def test_json_document_lists_files_commands_and_ownership(tree: Tree) -> None:
    root = tree("debian12-systemd-boot", config=config_text(("data", "4G", "12G")))
    done = run_pmemd("reconcile", "--dry-run", "--json", "--root", str(root))
    assert done.returncode == 4, done.stderr
    document = json.loads(done.stdout)
    assert document["state"] == "changes-pending" and document["dry_run"] is True
    assert document["bootloader"]["backend"] == "kernel-install"
    assert document["changes"] == [{"action": "add", "argument": M1, "reason": "region 'data'"}]
    assert [f["action"] for f in document["files"]] == ["write", "write", "write"]
    assert document["commands"] == [] and document["owned"] == [M1]
    assert document["next_boot"]["cmdline"].startswith("root=UUID=eeddd662")
