"""``pmemd`` command line: argparse, and the only place errors become exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from enum import IntEnum
from pathlib import Path

from pmemd import __version__
from pmemd.errors import ConfigError, MachineError, PmemdError
from pmemd.facts import read_config, read_facts, read_memory_map
from pmemd.machine import CONFIG_PATH, Machine
from pmemd.memmap import MemmapParseError, memory_map_from_dmesg
from pmemd.model import DEFAULT_ALIGNMENT, MIN_ALIGNMENT, PlanState
from pmemd.plan import plan
from pmemd.report import (
    dump_json,
    memmap_document,
    render_memmap_text,
    render_plan_text,
)
from pmemd.sizes import SizeError, format_bytes, parse_size, render_size

log = logging.getLogger("pmemd")


class Exit(IntEnum):
    OK = 0  # valid / converged
    FAILURE = 1  # the machine could not be read, a tool failed
    USAGE = 2  # bad command line (argparse)
    INVALID_CONFIG = 3
    CHANGES_PENDING = 4  # the boot configuration must change
    REBOOT_REQUIRED = 5  # the boot configuration is right, the running kernel is not
    DEGRADED = 6


PLAN_EXIT = {
    PlanState.CONVERGED: Exit.OK,
    PlanState.CHANGES_PENDING: Exit.CHANGES_PENDING,
    PlanState.REBOOT_REQUIRED: Exit.REBOOT_REQUIRED,
    PlanState.DEGRADED: Exit.DEGRADED,
    PlanState.INVALID_CONFIG: Exit.INVALID_CONFIG,
}


def _machine(args: argparse.Namespace) -> Machine:
    return Machine(Path(args.root))


def _config_path(args: argparse.Namespace) -> Path | None:
    return Path(args.config) if args.config is not None else None


def cmd_validate(args: argparse.Namespace) -> int:
    machine = _machine(args)
    config = read_config(machine, _config_path(args))
    try:
        facts = read_facts(machine)
    except MachineError as err:
        print(f"{config.source.path}: the file is valid; machine checks skipped: {err}",
              file=sys.stderr)
        return Exit.OK
    result = plan(config, facts)
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
        source = "<stdin>" if args.dmesg == "-" else args.dmesg
        try:
            text = sys.stdin.read() if args.dmesg == "-" else Path(args.dmesg).read_text(
                encoding="utf-8", errors="replace")
        except OSError as err:
            raise MachineError(f"{source}: {err.strerror}") from None
        try:
            memory = memory_map_from_dmesg(text, source)
        except MemmapParseError as err:
            where = f"{source}:{err.line}" if err.line else source
            raise MachineError(f"{where}: {err}") from None
    else:
        memory = read_memory_map(_machine(args))
    alignment = args.alignment if args.alignment is not None else _configured_alignment(args)
    if args.json:
        sys.stdout.write(dump_json(memmap_document(memory, alignment)))
    else:
        sys.stdout.write(render_memmap_text(memory, alignment))
    return Exit.OK


def _configured_alignment(args: argparse.Namespace) -> int:
    """memory.alignment of the config, so suggestions are ranges the config may use; the
    default when there is no config yet (the usual case before the first region)."""
    machine = _machine(args)
    try:
        config = read_config(machine, _config_path(args))
    except ConfigError as err:
        usable = err.partial
        if usable is None:
            if args.config is not None:  # named explicitly: a missing file is a mistake
                raise
            if machine.config.exists():
                print(f"warning: the config is unusable (pmemd validate); using the default "
                      f"alignment {render_size(DEFAULT_ALIGNMENT)}", file=sys.stderr)
            return DEFAULT_ALIGNMENT
        print(f"warning: {len(err.problems)} problem(s) in the config (pmemd validate); "
              f"using its memory.alignment {render_size(usable.memory.alignment)}",
              file=sys.stderr)
        return usable.memory.alignment
    return config.memory.alignment


def cmd_plan(args: argparse.Namespace) -> int:
    machine = _machine(args)
    config = read_config(machine, _config_path(args))
    from pmemd.history import read_history

    facts = replace(read_facts(machine, devices=True), history=read_history(machine))
    from pmemd.reconcile import plan_boot, read_boot_view
    from pmemd.report import plan_with_boot_document, render_boot_lines

    boot = read_boot_view(machine, config)  # judge against the bootloader's next boot
    result = plan_boot(config, facts, boot.owned, boot.target)
    if args.json:
        sys.stdout.write(dump_json(plan_with_boot_document(result, boot)))
    else:
        where = "this machine" if machine.root == Path("/") else str(machine.root)
        sys.stdout.write(render_plan_text(result, config, facts.kernel, where,
                                          render_boot_lines(boot)))
    return PLAN_EXIT[result.state]


RECONCILE_EXIT = {
    PlanState.CONVERGED: Exit.OK,
    PlanState.CHANGES_PENDING: Exit.CHANGES_PENDING,  # only with --dry-run
    PlanState.REBOOT_REQUIRED: Exit.REBOOT_REQUIRED,
    PlanState.DEGRADED: Exit.DEGRADED,
}


def cmd_reconcile(args: argparse.Namespace) -> int:
    """What pmemd-reconcile.service runs at every boot."""
    from pmemd.bootloader.stamp import remove_stamp, write_stamp
    from pmemd.reconcile import reconcile
    from pmemd.report import reconcile_document, render_reconcile_text
    from pmemd.runner import Runner

    machine = _machine(args)
    if args.remove_all:
        return _remove_all(args, machine)
    # First, whatever happens next (an invalid config, a failing bootloader, a reboot): the
    # next boot's on-boot: keep needs to know which ranges were pmem on this one.
    recorded = args.dry_run or _record_boot(machine)
    outcome = reconcile(machine, Runner(dry_run=args.dry_run), config_path=_config_path(args),
                        dry_run=args.dry_run,
                        # before writing: with boot.reboot auto, reconcile may end in a reboot
                        when_valid=None if args.dry_run else lambda: _refresh_generator_cache(
                            machine))
    text = (dump_json(reconcile_document(outcome)) if args.json
            else render_reconcile_text(outcome))
    sys.stdout.write(text)
    warnings = "".join(f"warning: {w.message}\n" for w in outcome.plan.warnings)
    sys.stderr.write(warnings)
    if not args.dry_run:
        if outcome.stampable and not args.json and recorded:
            write_stamp(machine, args.root, args.config, inputs=outcome.inputs,
                        regions=[r.range for r in outcome.plan.regions], output=text,
                        errors=warnings, history=(machine.boot_history, machine.boot_id,
                                                  machine.iomem, machine.sys_nd_devices))
        else:
            remove_stamp(machine)
    return RECONCILE_EXIT[outcome.state]


def _record_boot(machine: Machine) -> bool:
    """This boot in the boot history (see pmemd.history); a failure is a warning."""
    from pmemd.history import record_boot

    try:
        record_boot(machine)
    except MachineError as err:
        print(f"warning: {err}", file=sys.stderr)
        return False
    return True


def _refresh_generator_cache(machine: Machine) -> str:
    from pmemd.gencache import refresh_generator_cache

    done = refresh_generator_cache(machine)
    log.debug("generator cache %s: %s", machine.generator_cache, done)
    return done


def cmd_generator_cache(args: argparse.Namespace) -> int:
    """Write pmemd-generator's cache now (reconcile and the service keep it up to date)."""
    if args.config is not None:
        print("pmemd: generator-cache: --config does not apply: pmemd-generator reads "
              f"{CONFIG_PATH} under the root", file=sys.stderr)
        return Exit.USAGE
    machine = _machine(args)
    done = _refresh_generator_cache(machine)
    print(f"{machine.generator_cache}: {done}")
    return Exit.FAILURE if done.startswith("failed") else Exit.OK


def _remove_all(args: argparse.Namespace, machine: Machine) -> int:
    """``reconcile --remove-all``: what the packages run when pmemd is removed."""
    from pmemd.bootloader.stamp import remove_stamp
    from pmemd.reconcile import remove_all
    from pmemd.report import removal_document, render_removal_text
    from pmemd.runner import Runner

    removal = remove_all(machine, Runner(dry_run=args.dry_run), config_path=_config_path(args),
                         dry_run=args.dry_run)
    sys.stdout.write(dump_json(removal_document(removal)) if args.json
                     else render_removal_text(removal))
    if removal.dry_run:
        return Exit.CHANGES_PENDING if removal.removed else Exit.OK
    if removal.state_changed or removal.applied:
        remove_stamp(machine)
    return Exit.REBOOT_REQUIRED if removal.applied else Exit.OK


def cmd_serve(args: argparse.Namespace) -> int:
    from pmemd.service import serve  # imported here: only the daemon needs dbus-next

    if not args.verbose:  # a daemon says what it changes and refuses (the journal keeps it)
        logging.getLogger().setLevel(logging.INFO)
    return serve(_machine(args), _config_path(args), args.bus_address, args.idle_timeout)


def cmd_make_filesystem(args: argparse.Namespace) -> int:
    """What pmemd-makefs@….service runs before a region's mount."""
    from pmemd.filesystem import make_region_filesystem
    from pmemd.runner import Runner
    from pmemd.salvage import read_usable_config

    machine = _machine(args)
    usable = read_usable_config(machine, _config_path(args))
    usable.region(args.region)  # a ConfigError when the region has problems
    assert usable.config is not None
    outcome = make_region_filesystem(machine, usable.config, args.region,
                                     Runner(dry_run=args.dry_run))
    if outcome.argv:
        print(("would run: " if args.dry_run else "ran: ") + " ".join(outcome.argv))
    if outcome.decision.alarming:  # the content the user kept is gone: a warning
        sys.stdout.flush()
        print(f"{_journal_priority(WARNING)}warning: {outcome.message()}", file=sys.stderr)
    else:
        print(outcome.message())
    for warning in outcome.warnings:
        print(f"{_journal_priority(WARNING)}warning: {warning}", file=sys.stderr)
    return Exit.OK


WARNING = 4  # syslog priority


def _journal_priority(level: int) -> str:
    """``<N>``, which the journal reads as the line's priority, when stderr is connected to
    the journal (systemd's ``$JOURNAL_STREAM`` names that stream); nothing otherwise."""
    import os

    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        info = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return ""
    return f"<{level}>" if f"{info.st_dev}:{info.st_ino}" == f"{device}:{inode}" else ""


def cmd_verify_dax(args: argparse.Namespace) -> int:
    """What pmemd-dax@….service runs after a region's mount: fails unless DAX is on."""
    from pmemd.dax import read_mounts, verify_mount
    from pmemd.devices import locate_region
    from pmemd.salvage import read_usable_config

    machine = _machine(args)
    usable = read_usable_config(machine, _config_path(args))
    region = usable.region(args.region)
    assert usable.config is not None
    if region.filesystem is None:
        raise MachineError(f"region {args.region!r} has no filesystem in the config")
    located = locate_region(machine, usable.config, args.region)
    mount = verify_mount(located.device, region.filesystem.mountpoint, read_mounts(machine))
    dax = ",".join(o for o in mount.super_options if o.startswith("dax"))
    print(f"region {args.region}: {mount.mountpoint} ({mount.fstype} on {located.device.name}"
          f", {dax}, queue/dax {'1' if located.device.dax else 'unknown'}) is a DAX mount")
    return Exit.OK


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError("must be 0 (never) or a positive number of seconds")
    return value


def _alignment(text: str) -> int:
    try:
        value = parse_size(text)
    except SizeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if value < MIN_ALIGNMENT or value & (value - 1):
        raise argparse.ArgumentTypeError("must be a power of two of at least 2M")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default="/", metavar="DIR",
                        help="operate on the machine tree under DIR (default: /)")
    common.add_argument("--config", metavar="FILE",
                        help=f"config file (default: {CONFIG_PATH} under the root)")
    common.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser = argparse.ArgumentParser(
        prog="pmemd",
        description="Emulated persistent memory (memmap=) as a declarative systemd service.",
        epilog="Exit status: 0 valid/converged, 1 failure, 2 usage, 3 invalid config, "
               "4 changes pending, 5 reboot required, 6 degraded.")
    parser.add_argument("--version", action="version", version=f"pmemd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = sub.add_parser("validate", parents=[common],
                              help="check the config (and that it fits this machine)")
    validate.set_defaults(func=cmd_validate)

    memmap = sub.add_parser("memmap", parents=[common],
                            help="show the memory map and where pmem could go")
    memmap.add_argument("--dmesg", metavar="FILE",
                        help="read BIOS-e820/user lines from a saved dmesg ('-' for stdin)")
    memmap.add_argument("--alignment", type=_alignment, default=None, metavar="SIZE",
                        help="alignment of suggested ranges (default: the config's "
                             "memory.alignment, else 128M)")
    memmap.add_argument("--json", action="store_true", help="print a JSON document")
    memmap.set_defaults(func=cmd_memmap)

    plan_cmd = sub.add_parser("plan", parents=[common],
                              help="show what would change on the kernel command line, and why")
    plan_cmd.add_argument("--json", action="store_true", help="print a JSON document")
    plan_cmd.set_defaults(func=cmd_plan)

    reconcile_cmd = sub.add_parser(
        "reconcile", parents=[common],
        help="make the next boot's kernel command line match the config (at every boot)")
    reconcile_cmd.add_argument("--dry-run", action="store_true",
                               help="print the exact files and commands it would change")
    reconcile_cmd.add_argument("--json", action="store_true", help="print a JSON document")
    reconcile_cmd.add_argument(
        "--remove-all", action="store_true",
        help="instead, take every option pmemd recorded as its own off the next boot (what "
             "removing the package runs); never reboots; exit 5 when it changed the boot "
             "configuration")
    reconcile_cmd.set_defaults(func=cmd_reconcile)

    cache = sub.add_parser(
        "generator-cache", parents=[common],
        help="write pmemd-generator's cache of its output (reconcile and the service do)")
    cache.set_defaults(func=cmd_generator_cache)

    serve = sub.add_parser("serve", parents=[common],
                           help="run the D-Bus service io.pmemd1 (pmemd.service runs this)")
    serve.add_argument("--idle-timeout", type=_seconds, default=60.0, metavar="SECONDS",
                       help="exit after SECONDS without a call; bus activation starts it "
                            "again (default: 60; 0: never)")
    serve.add_argument("--bus-address", metavar="ADDRESS",
                       help="D-Bus address to serve on (default: the system bus, or "
                            "$DBUS_SYSTEM_BUS_ADDRESS)")
    serve.set_defaults(func=cmd_serve)

    makefs = sub.add_parser("make-filesystem", parents=[common],
                            help="make or keep a region's filesystem (its unit runs this)")
    makefs.add_argument("region", help="the region's name in the config")
    makefs.add_argument("--dry-run", action="store_true",
                        help="check and decide, but do not run mkfs")
    makefs.set_defaults(func=cmd_make_filesystem)

    verify = sub.add_parser("verify-dax", parents=[common],
                            help="check that a region's filesystem is mounted with DAX")
    verify.add_argument("region", help="the region's name in the config")
    verify.set_defaults(func=cmd_verify_dax)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args))
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return Exit.INVALID_CONFIG
    except PmemdError as err:
        print(f"pmemd: {err}", file=sys.stderr)
        return Exit.FAILURE
    except KeyboardInterrupt:
        return 130
