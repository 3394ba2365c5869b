"""The trial boot's GRUB pieces with the real update-grub and grub-reboot in a Debian 12
root: pmemd's drop-in with a trial armed makes /etc/grub.d/42_pmemd_trial write one entry,
id ``pmemd-trial``, booting the newest kernel exactly as the default entry does but with
the trial's options instead of pmemd's current ones (the admin's options kept); the default
entry is untouched; ``grub-reboot`` selects the trial for one boot in grubenv, where
Debian's grub.cfg clears it before booting it. Without a trial the script writes nothing."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from pmemd.boot.backends.base import Backend
from pmemd.boot.backends.update_grub import TRIAL_ID, render_dropin
from pmemd.boot.detect import detect
from pmemd.boot.grubcfg import MenuEntry, parse_grub_cfg, resolve_default
from pmemd.boot.grubenv import grubenv_problem, probe_grubenv
from pmemd.boot.trial import arm_trial, end_trial
from pmemd.core.cmdline import Cmdline, carries
from pmemd.core.trial import TrialState
from pmemd.errors import BootConfigError
from pmemd.machine.root import Machine
from pmemd.machine.runner import Runner
from pmemd.machine.state import State, read_state
from tests.boot.conftest import config_text, write_config
from tests.boot.debianroot import DebianRoot
from tests.conftest import REPO, run_pmemd

SCRIPT = REPO / "etc/grub.d/42_pmemd_trial"
TARGET = "/etc/grub.d/42_pmemd_trial"
DROPIN = "/etc/default/grub.d/pmemd.cfg"
OLD = ("memmap=4G!12G",)
NEW = ("memmap=2G!12G", "memmap=2G!10G", "pmemd.trial=0123abcd", "panic=10")
ADMIN = 'GRUB_CMDLINE_LINUX="console=ttyS0 dyndbg=\\"file foo.c +p\\""\n'
Debian = tuple[DebianRoot, Path]


def install(root: DebianRoot, dropin: str | None) -> None:
    root.remember(TARGET, DROPIN, "/etc/default/grub", "/boot/grub/grubenv")
    shutil.copy(SCRIPT, root.file(TARGET))
    root.file(TARGET).chmod(0o755)
    default = root.file("/etc/default/grub")
    default.write_text(re.sub(r"(?m)^GRUB_CMDLINE_LINUX=.*\n", ADMIN, default.read_text()))
    if dropin is None:
        root.file(DROPIN).unlink(missing_ok=True)
    else:
        root.file(DROPIN).write_text(dropin)
    root.update_grub()


def entries(root: DebianRoot) -> list[MenuEntry]:
    found: list[MenuEntry] = []

    def walk(items: tuple[MenuEntry, ...]) -> None:
        for item in items:
            found.append(item)
            walk(item.children)

    walk(parse_grub_cfg(root.file("/boot/grub/grub.cfg").read_text()).entries)
    return found


def args(entry: MenuEntry) -> list[str]:
    assert entry.cmdline is not None
    return [a.text for a in entry.cmdline.args]


def test_an_armed_trial_is_one_entry_with_the_new_options(debian: Debian) -> None:
    root, _ = debian
    install(root, render_dropin(OLD, NEW))
    default, _ = resolve_default(parse_grub_cfg(root.file("/boot/grub/grub.cfg").read_text()),
                                 {})
    assert default is not None
    trials = [e for e in entries(root) if e.entry_id == TRIAL_ID]
    assert len(trials) == 1, [e.entry_id for e in entries(root)]
    trial = trials[0]
    assert trial.kernel == default.kernel  # the newest kernel, as the default boots it
    assert set(OLD) <= set(args(default)) and not set(NEW) & set(args(default))
    # the same command line, with the trial's options where pmemd's current ones are
    at = args(default).index(OLD[0])
    assert args(trial) == [*args(default)[:at], *NEW, *args(default)[at + len(OLD):]]
    assert '"dyndbg=file foo.c +p"' in args(trial)  # the admin's quoted option, as GRUB passes it
    assert trial.title.startswith("pmemd trial boot: ")
    # Debian's grub.cfg boots next_entry once and clears it before booting
    cfg = root.file("/boot/grub/grub.cfg").read_text()
    assert 'set default="${next_entry}"\n   set next_entry=\n   save_env next_entry' in cfg
    root.chroot("grub-reboot", TRIAL_ID)
    env = root.file("/boot/grub/grubenv").read_text()
    assert f"next_entry={TRIAL_ID}\n" in env
    assert len(root.file("/boot/grub/grubenv").read_bytes()) == 1024


def test_no_trial_no_entry(debian: Debian) -> None:
    root, _ = debian
    install(root, render_dropin(OLD))
    assert not [e for e in entries(root) if e.entry_id == TRIAL_ID]
    assert "pmemd trial" not in root.file("/boot/grub/grub.cfg").read_text()
    install(root, None)
    assert not [e for e in entries(root) if e.entry_id == TRIAL_ID]


def test_a_first_trial_with_no_options_yet(debian: Debian) -> None:
    root, _ = debian
    install(root, render_dropin((), NEW))
    default, _ = resolve_default(parse_grub_cfg(root.file("/boot/grub/grub.cfg").read_text()),
                                 {})
    assert default is not None and not set(NEW) & set(args(default))
    trial = next(e for e in entries(root) if e.entry_id == TRIAL_ID)
    assert [a for a in args(trial) if a not in NEW] == args(default)
    assert set(NEW) <= set(args(trial))


@pytest.mark.parametrize(("abstractions", "fs", "says"), [
    ((), "ext2", None),
    ((), "xfs", None),
    (("lvm",), "ext2", "through lvm"),
    (("diskfilter", "mdraid1x"), "ext2", "through diskfilter and mdraid1x"),
    (("cryptodisk", "luks2"), "ext2", "through cryptodisk and luks2"),
    ((), "btrfs", "on btrfs"),
    ((), "zfs", "on zfs"),
], ids=["ext", "xfs", "lvm", "raid", "luks", "btrfs", "zfs"])
def test_where_grub_can_clear_a_one_time_selection(abstractions: tuple[str, ...], fs: str,
                                                   says: str | None) -> None:
    problem = grubenv_problem(abstractions, fs)
    if says is None:
        assert problem is None
    else:
        assert problem is not None and says in problem


def test_grub_probe_on_the_debian_root_says_it_can(debian: Debian) -> None:
    root, _ = debian
    machine = Machine(root.root)
    runner = Runner()
    assert probe_grubenv(machine, runner, machine.grub_env) is None
    assert any("grub-probe" in " ".join(argv) for argv in runner.recorded)


# --- arming through pmemd ---------------------------------------------------------------

DESIRED = ("memmap=2G!10G", "memmap=2G!12G")  # in the order pmemd plans them


def applied_a(root: DebianRoot) -> None:
    """Config A applied the direct way (one 4 GiB region), the trial script installed."""
    root.remember(TARGET, DROPIN, "/boot/grub/grubenv")
    shutil.copy(SCRIPT, root.file(TARGET))
    root.file(TARGET).chmod(0o755)
    write_config(root.root, config_text(("data", "4G", "12G"), trial="never"))
    done = run_pmemd("reconcile", "--root", str(root.root))
    assert done.returncode in (0, 5), done.stderr


def test_arming_writes_the_trial_and_leaves_the_default(debian: Debian) -> None:
    root, _ = debian
    applied_a(root)
    machine = Machine(root.root)
    backend = detect(machine).require()
    assert backend.trial_support(Runner()) is None
    before = backend.read_next_boot()
    grub_default = root.file(DROPIN).read_text()
    state = read_state(machine)
    after = arm_trial(machine, Runner(), backend, state, current=before, desired=DESIRED,
                      digest="feedc0de", boot_id="boot-a")
    assert after.trial.state is TrialState.ARMED and after.owned == state.owned
    assert read_state(machine) == after  # recorded with the write
    assert backend.read_next_boot().cmdline == before.cmdline
    trial = backend.read_trial()
    assert trial is not None
    for arg in (*DESIRED, "pmemd.trial=feedc0de", "panic=10"):
        assert carries(trial, arg), arg
    assert not carries(trial, "memmap=4G!12G")
    assert "next_entry=pmemd-trial\n" in root.file("/boot/grub/grubenv").read_text()
    assert grub_default != root.file(DROPIN).read_text()


def test_a_failed_arming_puts_everything_back(debian: Debian) -> None:
    root, _ = debian
    applied_a(root)
    machine = Machine(root.root)
    backend = detect(machine).require()
    paths = (DROPIN, "/boot/grub/grub.cfg", "/boot/grub/grubenv", "/var/lib/pmemd/state.json")

    def contents() -> dict[str, bytes | None]:
        return {p: root.file(p).read_bytes() if root.file(p).exists() else None for p in paths}

    files = contents()
    linux = root.file("/etc/grub.d/10_linux")
    linux.chmod(0o644)  # the trial script then fails, and with it update-grub
    try:
        with pytest.raises(BootConfigError, match="put the previous bootloader files back"):
            arm_trial(machine, Runner(), backend, read_state(machine),
                      current=backend.read_next_boot(), desired=DESIRED, digest="feedc0de",
                      boot_id="boot-a")
    finally:
        linux.chmod(0o755)
    assert contents() == files
    assert not root.file("/boot/grub/grub.cfg.new").exists()


def test_no_script_no_trial(debian: Debian) -> None:
    root, _ = debian
    root.remember(TARGET)
    root.file(TARGET).unlink(missing_ok=True)
    backend = detect(Machine(root.root)).require()
    why = backend.trial_support(Runner())
    assert why is not None and "/etc/grub.d/42_pmemd_trial" in why and "not installed" in why


def armed_root(root: DebianRoot) -> tuple[Machine, Backend, State]:
    applied_a(root)
    machine = Machine(root.root)
    backend = detect(machine).require()
    state = arm_trial(machine, Runner(), backend, read_state(machine),
                      current=backend.read_next_boot(), desired=DESIRED, digest="feedc0de",
                      boot_id="boot-a")
    return machine, backend, state


def test_a_committed_trial_becomes_the_default(debian: Debian) -> None:
    root, _ = debian
    machine, backend, state = armed_root(root)
    committed = replace(state.trial, state=TrialState.COMMITTED, booted="boot-b")
    after = end_trial(machine, Runner(), backend, state, committed, commit=True)
    assert after.owned == DESIRED and after.trial == committed
    assert read_state(machine) == after
    default = backend.read_next_boot().cmdline
    assert default is not None
    assert all(carries(default, a) for a in DESIRED) and not carries(default, "memmap=4G!12G")
    assert not carries(default, "pmemd.trial=feedc0de") and not carries(default, "panic=10")
    assert backend.read_trial() is None
    assert "next_entry" not in root.file("/boot/grub/grubenv").read_text()
    # and with the config that asked for these options, pmemd finds nothing to change
    write_config(root.root, config_text(("data", "2G", "12G"), ("cache", "2G", "10G")))
    again = run_pmemd("reconcile", "--root", str(root.root))
    assert "Nothing to change in the bootloader configuration." in again.stdout, again.stdout


def test_a_failed_trial_leaves_the_old_default(debian: Debian) -> None:
    root, _ = debian
    machine, backend, state = armed_root(root)
    before = backend.read_next_boot().cmdline
    failed = replace(state.trial, state=TrialState.FAILED, booted="boot-b",
                     reason="the trial boot did not come up")
    after = end_trial(machine, Runner(), backend, state, failed, commit=False)
    assert after.owned == ("memmap=4G!12G",) and after.trial == failed
    assert backend.read_next_boot().cmdline == before
    assert backend.read_trial() is None
    assert "next_entry" not in root.file("/boot/grub/grubenv").read_text()


# --- through pmemd reconcile ----------------------------------------------------------------

B = config_text(("data", "2G", "12G"), ("cache", "2G", "10G"))
MARK = "pmemd.trial="


def new_boot(facts: Path, boot_id: str, cmdline: str) -> None:
    """The machine as it looks after a reboot: a new boot id, that boot's command line (the
    files stay the ones bound into the root: written in place)."""
    (facts / "proc/sys/kernel/random/boot_id").write_text(boot_id + "\n")
    (facts / "proc/cmdline").write_text(cmdline + "\n")


def trial_state(root: DebianRoot) -> dict[str, object]:
    state = json.loads(root.file("/var/lib/pmemd/state.json").read_text())
    trial: dict[str, object] = state.get("trial") or {"state": "none"}
    return trial


def armed_by_reconcile(root: DebianRoot) -> tuple[Backend, Cmdline | None, str]:
    """A applied directly, then B's reconcile arms a trial: the backend, the default
    entry's command line (A's) and what the reconcile printed."""
    applied_a(root)
    backend = detect(Machine(root.root)).require()
    old_default = backend.read_next_boot().cmdline
    write_config(root.root, B)
    armed_run = run_pmemd("reconcile", "--root", str(root.root))
    assert armed_run.returncode == 5, armed_run.stdout + armed_run.stderr
    return backend, old_default, armed_run.stdout


def test_reconcile_arms_a_trial_and_a_boot_without_it_fails_it(debian: Debian) -> None:
    root, facts = debian
    backend, old_default, armed_stdout = armed_by_reconcile(root)
    assert "Trial boot: the next boot tries the new options once" in armed_stdout
    assert "Checked: the default entry now carries" not in armed_stdout
    assert trial_state(root)["state"] == "armed"
    assert backend.read_next_boot().cmdline == old_default
    trial = backend.read_trial()
    assert trial is not None and carries(trial, "memmap=2G!10G")
    owned = json.loads(root.file("/var/lib/pmemd/state.json").read_text())["owned"]
    assert owned == ["memmap=4G!12G"]  # pmemd owns what the default entry carries
    # the same boot again: held, nothing written
    again = run_pmemd("reconcile", "--root", str(root.root))
    assert again.returncode == 5 and "Trial boot: a trial boot of these options is armed" \
        in again.stdout, again.stdout
    assert "Nothing to change in the bootloader configuration." in again.stdout
    # the trial boot did not come up: the next boot is the default entry's
    new_boot(facts, "0c6d1e2f-0000-4000-8000-000000000002",
             "BOOT_IMAGE=/boot/vmlinuz-6.1.0-27-amd64 ro quiet memmap=4G!12G")
    failed = run_pmemd("reconcile", "--root", str(root.root))
    assert failed.returncode == 6, failed.stdout + failed.stderr  # degraded
    assert "the trial boot did not come up" in failed.stdout, failed.stdout
    assert trial_state(root)["state"] == "failed"
    assert backend.read_trial() is None and backend.read_next_boot().cmdline == old_default
    assert "next_entry" not in root.file("/boot/grub/grubenv").read_text()
    # and it is not armed again for the same config
    held = run_pmemd("reconcile", "--root", str(root.root))
    assert "pmemctl trial retry" in held.stdout and trial_state(root)["state"] == "failed"
    assert backend.read_trial() is None


def test_a_trial_boot_is_recognised_by_its_mark(debian: Debian) -> None:
    root, facts = debian
    applied_a(root)
    write_config(root.root, B)
    assert run_pmemd("reconcile", "--root", str(root.root)).returncode == 5
    digest = str(trial_state(root)["digest"])
    new_boot(facts, "0c6d1e2f-0000-4000-8000-000000000003",
             f"BOOT_IMAGE=/boot/vmlinuz-6.1.0-27-amd64 ro memmap=2G!10G memmap=2G!12G "
             f"{MARK}{digest} panic=10 quiet")
    running = run_pmemd("reconcile", "--root", str(root.root))
    assert "Trial boot: this boot is the trial boot" in running.stdout, running.stdout
    # the kernel carries what the default entry does not yet: not the reboot guard's to
    # judge (no degraded, no reboot required): pmemd-trial.service decides
    assert running.returncode == 0, running.stdout + running.stderr
    assert not root.file("/run/pmemd/degraded").exists()
    assert trial_state(root)["state"] == "running"
    assert "Nothing to change in the bootloader configuration." in running.stdout


def test_boot_trial_never_writes_the_default_directly(debian: Debian) -> None:
    root, _ = debian
    applied_a(root)
    write_config(root.root, config_text(("data", "2G", "12G"), ("cache", "2G", "10G"),
                                        trial="never"))
    done = run_pmemd("reconcile", "--root", str(root.root))
    assert done.returncode == 5, done.stderr
    assert "Trial boot: boot.trial: never" in done.stdout
    assert "Checked: the default entry now carries memmap=2G!10G" in done.stdout
    assert trial_state(root)["state"] == "none"


def test_verify_trial_fails_a_trial_boot_whose_devices_are_missing(debian: Debian) -> None:
    """The trial boot came up with the options, but no region's device appeared (the
    Debian root has no pmem devices): pmemd verify-trial fails the trial with the regions
    named, the default entry keeps the old options, the trial entry is gone, exit 6; with
    boot.reboot: never it does not reboot and says the next boot is the old one."""
    root, facts = debian
    backend, old_default, _ = armed_by_reconcile(root)
    digest = str(trial_state(root)["digest"])
    nothing = run_pmemd("verify-trial", "--root", str(root.root))  # not the trial boot yet
    assert nothing.returncode == 0 and "no trial boot to verify (trial: armed)" in nothing.stdout
    new_boot(facts, "0c6d1e2f-0000-4000-8000-000000000004",
             f"BOOT_IMAGE=/boot/vmlinuz-6.1.0-27-amd64 ro memmap=2G!10G memmap=2G!12G "
             f"{MARK}{digest} panic=10 quiet")
    done = run_pmemd("verify-trial", "--root", str(root.root))
    assert done.returncode == 6, done.stdout + done.stderr
    assert "the trial boot came up but region 'cache'" in done.stdout, done.stdout
    assert "the next boot is the default entry's, with the old options" in done.stdout
    assert trial_state(root)["state"] == "failed"
    assert backend.read_next_boot().cmdline == old_default and backend.read_trial() is None
    again = run_pmemd("verify-trial", "--root", str(root.root))
    assert again.returncode == 0 and "trial: failed" in again.stdout


def test_remove_all_takes_an_armed_trial_away_too(debian: Debian) -> None:
    """Package removal (reconcile --remove-all) with a trial armed: the trial entry, its
    one-time selection and pmemd's drop-in go; GRUB's default entry carries none of pmemd's
    options; state.json records no trial and owns nothing."""
    root, _ = debian
    backend, _, _ = armed_by_reconcile(root)
    assert "next_entry=pmemd-trial" in root.file("/boot/grub/grubenv").read_text()
    done = run_pmemd("reconcile", "--root", str(root.root), "--remove-all")
    assert done.returncode == 5, done.stdout + done.stderr  # A's option taken off: reboot
    assert backend.read_trial() is None
    assert not root.file(DROPIN).exists()
    assert "next_entry" not in root.file("/boot/grub/grubenv").read_text()
    default = backend.read_next_boot().cmdline
    assert default is not None and not [a for a in default.args if a.text.startswith("memmap=")]
    state = json.loads(root.file("/var/lib/pmemd/state.json").read_text())
    assert state["owned"] == [] and "trial" not in state


def test_plan_says_how_the_change_will_reach_the_boot(debian: Debian) -> None:
    """pmemd plan, before anything is written: with the trial script and a writable
    grubenv the change would be tried once (next_change arm); with trial: never, direct;
    after an armed trial, held — in the text and in --json."""
    root, _ = debian
    applied_a(root)
    write_config(root.root, B)
    planned = run_pmemd("plan", "--root", str(root.root))
    assert "Trial:    none" in planned.stdout, planned.stdout
    assert "the change: the next boot tries the new options once" in planned.stdout
    doc = json.loads(run_pmemd("plan", "--root", str(root.root), "--json").stdout)
    assert doc["trial"]["next_change"] == "arm"
    write_config(root.root, config_text(("data", "2G", "12G"), ("cache", "2G", "10G"),
                                        trial="never"))
    never = json.loads(run_pmemd("plan", "--root", str(root.root), "--json").stdout)
    assert never["trial"]["next_change"] == "direct"
    write_config(root.root, B)
    assert run_pmemd("reconcile", "--root", str(root.root)).returncode == 5  # arms it
    held = json.loads(run_pmemd("plan", "--root", str(root.root), "--json").stdout)
    assert held["trial"]["state"] == "armed" and held["trial"]["next_change"] == "hold"


def test_an_admins_pending_one_time_boot_is_not_taken_away(debian: Debian) -> None:
    """The admin ran grub-reboot: arming a trial would replace their selection. With
    ``auto`` the change goes into the default entry directly (their entry boots next, once);
    with ``required`` nothing is written."""
    root, _ = debian
    applied_a(root)
    root.chroot("grub-editenv", "/boot/grub/grubenv", "set", "next_entry=plain")
    grub_cfg = root.file("/boot/grub/grub.cfg").read_text()
    write_config(root.root, config_text(("data", "2G", "12G"), ("cache", "2G", "10G"),
                                        trial="required"))
    held = run_pmemd("reconcile", "--root", str(root.root))
    assert "boot.trial: required, but no trial boot here (the next boot is already " \
           "selected once (next_entry=plain" in held.stdout, held.stdout
    assert root.file("/boot/grub/grub.cfg").read_text() == grub_cfg  # nothing written
    assert trial_state(root)["state"] == "none"
    write_config(root.root, B)
    direct = run_pmemd("reconcile", "--root", str(root.root))
    assert direct.returncode == 5, direct.stdout + direct.stderr
    assert "no trial boot here (the next boot is already selected once" in direct.stdout
    assert "Checked: the default entry now carries" in direct.stdout, direct.stdout
    assert "next_entry=plain\n" in root.file("/boot/grub/grubenv").read_text()


def test_no_trial_when_the_default_entry_says_panic_0(debian: Debian) -> None:
    root, _ = debian
    applied_a(root)
    root.remember("/etc/default/grub", "/boot/grub/grub.cfg")
    default = root.file("/etc/default/grub")
    default.write_text(default.read_text().replace('GRUB_CMDLINE_LINUX_DEFAULT="quiet"',
                                                   'GRUB_CMDLINE_LINUX_DEFAULT="quiet panic=0"'))
    root.update_grub()
    write_config(root.root, B)
    done = run_pmemd("reconcile", "--root", str(root.root))
    assert "says panic=0" in done.stdout and "changed directly" in done.stdout, done.stdout
    assert trial_state(root)["state"] == "none"
