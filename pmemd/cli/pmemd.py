"""``pmemd``: its command line (argparse), and the one place where errors become exit
statuses (:mod:`pmemd.cli.exits`). What each command does is :mod:`pmemd.cli.commands`.

A plain ``pmemd reconcile`` that changes nothing (every boot) never gets here: the console
script answers it from the converged stamp (:mod:`pmemd.cli.entry`)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pmemd import __version__
from pmemd.cli.commands import (
    cmd_generator_cache,
    cmd_list_regions,
    cmd_make_filesystem,
    cmd_memmap,
    cmd_plan,
    cmd_reconcile,
    cmd_serve,
    cmd_set_mode,
    cmd_validate,
    cmd_verify_dax,
    cmd_verify_trial,
    said_in_journal,
)
from pmemd.cli.exits import Exit, exit_for
from pmemd.core.model import MIN_ALIGNMENT
from pmemd.core.sizes import SizeError, parse_size
from pmemd.errors import ConfigError, PmemdError
from pmemd.machine.root import CONFIG_PATH

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[Any]  # what add_subparsers returns


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError("must be 0 (never) or a positive number of seconds")
    return value


def _root(text: str) -> str:
    """A machine tree to operate on: it must be a directory (a file there used to end in a
    traceback at the first path read under it)."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    return text


def _alignment(text: str) -> int:
    try:
        value = parse_size(text)
    except SizeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if value < MIN_ALIGNMENT or value & (value - 1):
        raise argparse.ArgumentTypeError("must be a power of two of at least 2M")
    return value


class _UsageError(Exception):
    """A bad command line, as argparse words it (``pmemd plan: error: …``)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised rather than exited on, so that ``--json`` can
    print it as a document too."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise _UsageError(f"{self.prog}: error: {message}")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--root", default="/", metavar="DIR", type=_root,
                        help="operate on the machine tree under DIR (default: /)")
    common.add_argument("--config", metavar="FILE",
                        help=f"config file (default: {CONFIG_PATH} under the root)")
    common.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser = _Parser(
        prog="pmemd",
        description="Emulated persistent memory (memmap=) as a declarative systemd service.",
        epilog="Exit status: 0 valid/converged, 1 failure, 2 usage, 3 invalid config, "
               "4 changes pending, 5 reboot required, 6 degraded.")
    parser.add_argument("--version", action="version", version=f"pmemd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _reading_commands(sub, common)
    _boot_commands(sub, common)
    _unit_commands(sub, common)
    return parser


def _reading_commands(sub: Subparsers, common: argparse.ArgumentParser) -> None:
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

    regions = sub.add_parser("list-regions", parents=[common],
                             help="print each region's name and mountpoint, tab-separated "
                                  "(what shell completion reads)")
    regions.set_defaults(func=cmd_list_regions)


def _boot_commands(sub: Subparsers, common: argparse.ArgumentParser) -> None:
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


def _unit_commands(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    serve = sub.add_parser("serve", parents=[common],
                           help="run the D-Bus service io.pmemd1 (pmemd.service runs this)")
    serve.add_argument("--idle-timeout", type=_seconds, default=60.0, metavar="SECONDS",
                       help="exit after SECONDS without a call; bus activation starts it "
                            "again (default: 60; 0: never)")
    serve.add_argument("--bus-address", metavar="ADDRESS",
                       help="D-Bus address to serve on (default: the system bus, or "
                            "$DBUS_SYSTEM_BUS_ADDRESS)")
    serve.add_argument("--stop-timeout", type=_seconds, default=80.0, metavar="SECONDS",
                       help="on SIGTERM, wait at most SECONDS for the change in progress to "
                            "finish (default: 80, below the unit's TimeoutStopSec)")
    serve.set_defaults(func=cmd_serve)

    makefs = sub.add_parser("make-filesystem", parents=[common],
                            help="make or keep a region's filesystem (its unit runs this)")
    makefs.add_argument("region", help="the region's name in the config")
    makefs.add_argument("--dry-run", action="store_true",
                        help="check and decide, but do not run mkfs")
    makefs.set_defaults(func=cmd_make_filesystem)

    mode = sub.add_parser("set-mode", parents=[common],
                          help="make a region's namespace fsdax, devdax or system-ram, as its "
                               "mode says (its unit runs this)")
    mode.add_argument("region", help="the region's name in the config")
    mode.add_argument("--dry-run", action="store_true",
                      help="check and decide, but do not run ndctl or daxctl")
    mode.set_defaults(func=cmd_set_mode)

    verify = sub.add_parser("verify-dax", parents=[common],
                            help="check that a region's filesystem is mounted with DAX")
    verify.add_argument("region", help="the region's name in the config")
    verify.set_defaults(func=cmd_verify_dax)

    trial = sub.add_parser("verify-trial", parents=[common],
                           help="on a trial boot: commit the trial, or fail it and go back "
                                "to the old options (its unit runs this)")
    trial.set_defaults(func=cmd_verify_trial)


def _terminated(signum: int, _frame: object) -> None:
    """SIGTERM (``systemctl stop``, a shutdown) as an exception, so that a change under
    way puts its files back before pmemd exits; a second one waits for that."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def _report_io_error(err: OSError, *, json: bool) -> None:
    """Say which file failed and how (with ``--json`` also as a document on stdout); if it
    was the output itself, let it go quietly (the interpreter would otherwise fail again
    flushing it at exit)."""
    where = f"{err.filename}: " if err.filename else "writing the output: "
    message = f"{where}{err.strerror or err}"
    try:
        if json:
            from pmemd.core.report import failure_document

            _print_failure(failure_document("IOError", message, Exit.FAILURE))
        sys.stdout.flush()
    except OSError:
        _silence(sys.stdout)
    _tell(f"pmemd: {message}")


def _silence(stream: Any) -> None:
    """Point a stream that cannot be written (a full disk, EIO) at /dev/null, so that the
    interpreter's flush at exit does not fail again with a traceback."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def _tell(text: str) -> None:
    """An error message on stderr; where stderr itself fails, the exit status still says
    what happened."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        _silence(sys.stderr)


def _print_failure(document: dict[str, Any]) -> None:
    from pmemd.core.report import dump_json

    sys.stdout.write(dump_json(document))


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminated)
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(words)
    except _UsageError as err:
        print(err, file=sys.stderr)
        if "--json" in words:
            from pmemd.core.report import failure_document

            _print_failure(failure_document("UsageError", str(err), Exit.USAGE))
        return Exit.USAGE
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return int(func(args))
    except PmemdError as err:
        if not said_in_journal(err.journaled, sys.stderr):
            _tell(err.render() if isinstance(err, ConfigError) else f"pmemd: {err}")
        if getattr(args, "json", False):  # a document on stdout, whatever happened
            from pmemd.core.report import error_document

            try:
                _print_failure(error_document(err, exit_for(err)))
                sys.stdout.flush()
            except OSError:
                _silence(sys.stdout)
        return exit_for(err)
    except KeyboardInterrupt:
        return 130
    except OSError as err:  # an I/O error outside a change's rollback: a full disk, EIO
        _report_io_error(err, json=getattr(args, "json", False))
        return Exit.FAILURE
