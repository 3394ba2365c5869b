"""What each ``pmemd`` command does, from its parsed arguments to its exit status. Errors
are raised as they are (:mod:`pmemd.errors`); :func:`pmemd.cli.pmemd.main` turns them into
exit statuses. Each command imports only what it uses: ``reconcile`` runs at every boot,
``make-filesystem`` and ``verify-dax`` for every region."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TextIO

from pmemd.cli.exits import PLAN_EXITS, Exit
from pmemd.core.config import ParsedConfig
from pmemd.core.model import DEFAULT_ALIGNMENT, Config
from pmemd.core.plan import PlanState
from pmemd.core.report import dump_json, memmap_document, render_memmap_text, render_plan_text
from pmemd.core.sizes import format_bytes, render_size
from pmemd.errors import ConfigError, MachineError
from pmemd.machine.facts import read_config, read_facts
from pmemd.machine.memory import read_memory_map
from pmemd.machine.root import CONFIG_PATH, Machine

log = logging.getLogger("pmemd")

WARNING = 4  # syslog priority
# How long a change waits for another one (another reconcile, the service's Apply, a
# make-filesystem at boot) before it gives up: longer than any bootloader tool takes.
LOCK_WAIT = 300.0


def machine_of(args: argparse.Namespace) -> Machine:
    return Machine(Path(args.root))


def config_path_of(args: argparse.Namespace) -> Path | None:
    return Path(args.config) if args.config is not None else None


def _config(args: argparse.Namespace) -> ParsedConfig:
    return read_config(machine_of(args), config_path_of(args))


def _locked(machine: Machine, what: str) -> AbstractContextManager[None]:
    """pmemd's change lock for ``what``; saying once on stderr whom it waits for."""
    from pmemd.machine.lock import change_lock

    def waiting(holder: str) -> None:
        print(f"{what}: waiting for pmemd's lock ({holder})", file=sys.stderr, flush=True)

    return change_lock(machine, what, wait=LOCK_WAIT, waiting=waiting)


def _region_config(args: argparse.Namespace) -> Config:
    """The usable config, once region ``args.region`` is known to be in it without problems
    (else the region's own problems, or that it is not there)."""
    parsed = _config(args)
    parsed.region(args.region)
    assert parsed.usable is not None
    return parsed.usable


def _region_lock(args: argparse.Namespace, machine: Machine, verb: str
                 ) -> AbstractContextManager[None]:
    """pmemd's change lock for ``pmemd VERB REGION``; none for a dry run (it changes
    nothing)."""
    return contextlib.nullcontext() if args.dry_run else _locked(
        machine, f"pmemd {verb} {args.region}")


# --- reading -----------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    machine = machine_of(args)
    config = _config(args).require()
    try:
        facts = read_facts(machine)
    except MachineError as err:
        print(f"{config.source.path}: the file is valid; machine checks skipped: {err}",
              file=sys.stderr)
        return Exit.OK
    from pmemd.boot.view import plan_next_boot, read_boot_view

    # as pmemd plan judges it: an option pmemd wrote is not a foreign one
    result = plan_next_boot(config, facts, read_boot_view(machine, config))
    if result.problems:
        raise ConfigError(result.problems)
    for warning in result.warnings:
        print(f"warning: {warning.message}", file=sys.stderr)
    placed = ", ".join(f"{r.region.name} {format_bytes(r.range.size)} at 0x{r.range.start:x}"
                       for r in result.regions)
    print(f"{config.source.path}: valid ({len(result.regions)} regions"
          f"{': ' + placed if placed else ''})")
    return Exit.OK


def cmd_memmap(args: argparse.Namespace) -> int:
    if args.dmesg is not None:
        from pmemd.machine.bootlog import read_boot_log_map

        memory = read_boot_log_map(args.dmesg)
    else:
        memory = read_memory_map(machine_of(args))
    for oddity in memory.oddities:
        print(f"warning: {memory.firmware_source}: {oddity}", file=sys.stderr)
    alignment = args.alignment if args.alignment is not None else _configured_alignment(args)
    if args.json:
        sys.stdout.write(dump_json(memmap_document(memory, alignment)))
    else:
        sys.stdout.write(render_memmap_text(memory, alignment))
    return Exit.OK


def _configured_alignment(args: argparse.Namespace) -> int:
    """memory.alignment of the config, so suggestions are ranges the config may use; the
    default when there is no config yet (the usual case before the first region)."""
    parsed = _config(args)
    if parsed.valid:
        return parsed.require().memory.alignment
    usable = parsed.usable
    if usable is None:
        if args.config is not None:  # named explicitly: a missing file is a mistake
            raise ConfigError(parsed.problems)
        if machine_of(args).config.exists():
            print(f"warning: the config is unusable (pmemd validate); using the default "
                  f"alignment {render_size(DEFAULT_ALIGNMENT)}", file=sys.stderr)
        return DEFAULT_ALIGNMENT
    print(f"warning: {len(parsed.problems)} problem(s) in the config (pmemd validate); "
          f"using its memory.alignment {render_size(usable.memory.alignment)}",
          file=sys.stderr)
    return usable.memory.alignment


def cmd_plan(args: argparse.Namespace) -> int:
    from pmemd.boot.report import plan_with_boot_document, render_boot_lines
    from pmemd.boot.trial import outlook
    from pmemd.boot.view import plan_next_boot, read_boot_view

    machine = machine_of(args)
    config = _config(args).require()
    facts = read_facts(machine, devices=True)
    boot = read_boot_view(machine, config)  # judge against the bootloader's next boot
    result = plan_next_boot(config, facts, boot)
    trial = outlook(machine, result, boot.detection.backend, config.boot.trial)
    if args.json:
        sys.stdout.write(dump_json({**plan_with_boot_document(result, boot),
                                    "trial": trial.document()}))
    else:
        where = "this machine" if machine.root == Path("/") else str(machine.root)
        sys.stdout.write(render_plan_text(result, config, facts.kernel, where,
                                          [*render_boot_lines(boot), *trial.lines()]))
    return PLAN_EXITS[result.state]


def cmd_list_regions(args: argparse.Namespace) -> int:
    """One line per region of the config, as far as it is usable: its name, a tab, its
    mountpoint (empty for a bare device). The shell completions read it; a config with
    problems still lists the regions that have none, and exits 3."""
    parsed = _config(args)
    if parsed.usable is None:
        raise ConfigError(parsed.problems)
    for region in parsed.usable.regions:
        mountpoint = region.filesystem.mountpoint if region.filesystem is not None else ""
        print(f"{region.name}\t{mountpoint}")
    if parsed.valid:
        return Exit.OK
    print(f"warning: {len(parsed.problems)} problem(s) in the config (pmemd validate); "
          "only the regions without one are listed", file=sys.stderr)
    return Exit.INVALID_CONFIG


# --- the boot configuration --------------------------------------------------------------


RECONCILE_EXITS = {
    PlanState.CONVERGED: Exit.OK,
    PlanState.CHANGES_PENDING: Exit.CHANGES_PENDING,  # only with --dry-run
    PlanState.REBOOT_REQUIRED: Exit.REBOOT_REQUIRED,
    PlanState.DEGRADED: Exit.DEGRADED,
}


def cmd_reconcile(args: argparse.Namespace) -> int:
    """What pmemd-reconcile.service runs at every boot."""
    from pmemd.boot.reconcile import reconcile
    from pmemd.boot.report import reconcile_document, render_reconcile_text
    from pmemd.boot.stamp import remove_stamp, write_stamp
    from pmemd.machine.runner import Runner

    machine = machine_of(args)
    if args.remove_all:
        return _remove_all(args, machine)
    # First, whatever happens next (an invalid config, a failing bootloader, a reboot): the
    # next boot's on-boot: keep needs to know which ranges were pmem on this one.
    recorded = args.dry_run or _record_boot(machine)
    # The stamp is written under the lock too: it must record the inputs as this run left
    # them, not as the next change already has.
    with contextlib.nullcontext() if args.dry_run else _locked(machine, "pmemd reconcile"):
        outcome = reconcile(machine, Runner(dry_run=args.dry_run),
                            config_path=config_path_of(args), dry_run=args.dry_run,
                            # before writing: with boot.reboot auto, it may end in a reboot
                            when_valid=None if args.dry_run else lambda: refresh_cache(machine))
        text = (dump_json(reconcile_document(outcome)) if args.json
                else render_reconcile_text(outcome))
        sys.stdout.write(text)
        warnings = "".join(f"warning: {w.message}\n" for w in outcome.plan.warnings)
        sys.stderr.write(warnings)
        if not args.dry_run and outcome.stampable and not args.json and recorded:
            write_stamp(machine, args.root, args.config, inputs=outcome.inputs,
                        regions=[r.range for r in outcome.plan.regions], output=text,
                        errors=warnings)
        elif not args.dry_run:
            remove_stamp(machine)
    return RECONCILE_EXITS[outcome.state]


def _record_boot(machine: Machine) -> bool:
    """This boot in the boot history (see pmemd.machine.history); a failure is a warning."""
    from pmemd.machine.history import record_boot

    try:
        record_boot(machine)
    except MachineError as err:
        print(f"warning: {err}", file=sys.stderr)
        return False
    return True


def _remove_all(args: argparse.Namespace, machine: Machine) -> int:
    """``reconcile --remove-all``: what the packages run when pmemd is removed."""
    from pmemd.boot.removal import remove_all
    from pmemd.boot.report import removal_document, render_removal_text
    from pmemd.boot.stamp import remove_stamp
    from pmemd.machine.runner import Runner

    with contextlib.nullcontext() if args.dry_run else _locked(
            machine, "pmemd reconcile --remove-all"):
        removal = remove_all(machine, Runner(dry_run=args.dry_run),
                             config_path=config_path_of(args), dry_run=args.dry_run)
    sys.stdout.write(dump_json(removal_document(removal)) if args.json
                     else render_removal_text(removal))
    if removal.dry_run:
        return Exit.CHANGES_PENDING if removal.removed or removal.trial else Exit.OK
    if removal.state_changed or removal.applied:
        remove_stamp(machine)
    return Exit.REBOOT_REQUIRED if removal.applied else Exit.OK


def refresh_cache(machine: Machine) -> bool:
    """Write pmemd-generator's cache; says whether that worked (a failure is logged)."""
    from pmemd.generator.cache import CacheResult, refresh_generator_cache

    done, why = refresh_generator_cache(machine)
    log.debug("generator cache %s: %s %s", machine.generator_cache, done.value, why)
    if done is CacheResult.FAILED:
        print(f"warning: pmemd-generator's cache not written ({why}); the generator works "
              "without it, only slower", file=sys.stderr)
    return done is not CacheResult.FAILED


def cmd_generator_cache(args: argparse.Namespace) -> int:
    """Write pmemd-generator's cache now (reconcile and the service keep it up to date)."""
    from pmemd.generator.cache import CacheResult, refresh_generator_cache

    if args.config is not None:
        print("pmemd: generator-cache: --config does not apply: pmemd-generator reads "
              f"{CONFIG_PATH} under the root", file=sys.stderr)
        return Exit.USAGE
    machine = machine_of(args)
    done, why = refresh_generator_cache(machine)
    print(f"{machine.generator_cache}: {done.value}{': ' + why if why else ''}")
    return Exit.FAILURE if done is CacheResult.FAILED else Exit.OK


# --- the service and the units' commands -------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from pmemd.service.server import serve  # only the daemon needs dbus-next

    if not args.verbose:  # a daemon says what it changes and refuses (the journal keeps it)
        logging.getLogger().setLevel(logging.INFO)
    return serve(machine_of(args), config_path_of(args), args.bus_address, args.idle_timeout,
                 args.stop_timeout)


def _to_journal(stream: TextIO) -> bool:
    """``stream`` is connected to the journal (systemd's ``$JOURNAL_STREAM`` names it)."""
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return False
    return f"{info.st_dev}:{info.st_ino}" == f"{device}:{inode}"


def _journal_priority(level: int) -> str:
    """``<N>``, which the journal reads as the line's priority, when stderr is connected to
    the journal; nothing otherwise."""
    return f"<{level}>" if _to_journal(sys.stderr) else ""


def said_in_journal(journaled: bool, stream: TextIO) -> bool:
    """The journal already has the message as a structured event, and ``stream`` would only
    put it there a second time."""
    return journaled and _to_journal(stream)


def cmd_make_filesystem(args: argparse.Namespace) -> int:
    """What pmemd-makefs@….service runs before a region's mount."""
    from pmemd.machine.runner import Runner
    from pmemd.storage.makefs import make_region_filesystem

    config = _region_config(args)
    machine = machine_of(args)
    with _region_lock(args, machine, "make-filesystem"):
        outcome = make_region_filesystem(machine, config, args.region,
                                         Runner(dry_run=args.dry_run))
    if outcome.argv:
        print(("would run: " if args.dry_run else "ran: ") + " ".join(outcome.argv))
    if outcome.decision.alarming:  # the content the user kept is gone: a warning
        sys.stdout.flush()
        if not said_in_journal(outcome.journaled, sys.stderr):
            print(f"{_journal_priority(WARNING)}warning: {outcome.message()}",
                  file=sys.stderr)
    elif not said_in_journal(outcome.journaled, sys.stdout):
        print(outcome.message())
    for warning in outcome.warnings:
        print(f"{_journal_priority(WARNING)}warning: {warning}", file=sys.stderr)
    return Exit.OK


def cmd_set_mode(args: argparse.Namespace) -> int:
    """What pmemd-mode@0x….service runs at boot: the region's namespace in its mode."""
    from pmemd.machine.runner import Runner
    from pmemd.storage.namespace import set_region_mode

    config = _region_config(args)
    machine = machine_of(args)
    with _region_lock(args, machine, "set-mode"):
        outcome = set_region_mode(machine, config, args.region, Runner(dry_run=args.dry_run))
    for argv in outcome.argvs:
        print(("would run: " if args.dry_run else "ran: ") + " ".join(argv))
    if not said_in_journal(outcome.journaled, sys.stdout):
        print(outcome.message())
    return Exit.OK


def cmd_verify_dax(args: argparse.Namespace) -> int:
    """What pmemd-dax@….service runs after a region's mount: fails unless DAX is on."""
    from pmemd.storage.verify import verify_region

    print(verify_region(machine_of(args), _region_config(args), args.region).describe())
    return Exit.OK


def cmd_verify_trial(args: argparse.Namespace) -> int:
    """What pmemd-trial.service runs on a trial boot: 0 when committed (or no trial boot to
    verify), 6 (degraded) when the trial failed."""
    from pmemd.boot.trial import verify_trial
    from pmemd.machine.runner import Runner

    machine = machine_of(args)
    with _locked(machine, "pmemd verify-trial"):
        done = verify_trial(machine, Runner(), config_path=config_path_of(args))
    if not said_in_journal(done.journaled, sys.stdout):
        print(f"Trial boot: {done.message}")
    return Exit.DEGRADED if done.action == "failed" else Exit.OK
