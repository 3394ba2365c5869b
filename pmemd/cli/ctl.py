"""``pmemctl``: the client of the D-Bus service io.pmemd1, like ``hostnamectl``.

Every command is one or a few method calls (:mod:`pmemd.service.client`, over sd-bus); the
service does the work and asks polkit. Reading needs no privilege. Changes carry the D-Bus
``ALLOW_INTERACTIVE_AUTHORIZATION`` flag when standing at a terminal (as ``systemctl``
does), with ``pkttyagent`` started for this process (:mod:`pmemd.cli.ttyagent`), so polkit
may ask for a password there; ``--no-ask-password`` turns both off.

It imports the wire contract (:mod:`pmemd.service.api`) and the client, never the service:
``pmemctl status`` costs about as much as starting the interpreter.
"""

from __future__ import annotations

import argparse
import sys

from pmemd import __version__
from pmemd.cli.ctl_text import render_plan, render_regions, render_status
from pmemd.service import api
from pmemd.service.client import CHANGE_TIMEOUT, QUERY_TIMEOUT, TIMED_OUT, BusError, Client

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

    from pmemd.cli.ttyagent import TtyAgent

OK, FAILURE, USAGE, INVALID_CONFIG = 0, 1, 2, 3  # exit statuses (pmemctl(1))
# The largest config pmemd reads (pmemd.core.yamltree.MAX_CONFIG_BYTES, which pmemctl does
# not import: a test holds the two equal).
CONFIG_LIMIT = 1 << 20


class CtlError(Exception):
    """A failure to report on one line (or a few) and exit with ``status``."""

    def __init__(self, message: str, status: int = FAILURE) -> None:
        super().__init__(message)
        self.status = status


def _error(err: BusError) -> CtlError:
    """What a failed call means to the user, and the exit status it gives."""
    name, text = err.name, err.message
    if not name:
        return CtlError(f"{text}; is dbus running?")
    if name in api.SERVICE_ABSENT:
        return CtlError(f"the pmemd service ({api.BUS_NAME}) is not available on the system "
                        f"bus and cannot be started by it: {text}\n"
                        "Is pmemd installed? See 'systemctl status pmemd.service'.")
    if name in api.NOT_ALLOWED:
        return CtlError(f"access denied: {text}" if text and text != "Access denied"
                        else "access denied")
    if name == api.ErrorName.INVALID_CONFIG:
        return CtlError(text, INVALID_CONFIG)
    if name == api.NO_REPLY:
        return CtlError(f"the pmemd service did not answer: {text}")
    return CtlError(f"{text} ({name})" if name.startswith("org.freedesktop") else text)


def _timeouts(option: float | None) -> tuple[float | None, float | None]:
    """(queries, changes) in seconds from ``--timeout`` (``None``: the defaults; 0: no
    bound at all)."""
    if option is None:
        return QUERY_TIMEOUT, CHANGE_TIMEOUT
    return (option or None), (option or None)


def _call_error(err: BusError, timeout: float | None) -> CtlError:
    if err.name == TIMED_OUT:
        return CtlError(f"the pmemd service did not answer within {timeout:g} s "
                        "(see --timeout)")
    return _error(err)


class Session:
    """The bus, and — for a change at a terminal — a polkit agent on it."""

    def __init__(self, client: Client, interactive: bool,
                 timeout: float | None = None) -> None:
        self.client = client
        self.interactive = interactive
        self.query_timeout, self.change_timeout = _timeouts(timeout)
        self.agent: TtyAgent | None = None
        self._agent_tried = False

    def read(self, method: api.Method, path: str = api.MANAGER_PATH,
             *args: str | bool) -> list[object]:
        try:
            return self.client.call(method, path, *args, timeout=self.query_timeout)
        except BusError as err:
            raise _call_error(err, self.query_timeout) from None

    def properties(self, path: str, interface: str) -> dict[str, object]:
        try:
            return self.client.properties(path, interface, timeout=self.query_timeout)
        except BusError as err:
            raise _call_error(err, self.query_timeout) from None

    def change(self, method: api.Method, path: str, *args: str | bool) -> list[object]:
        """A call that changes something: polkit may ask, on this terminal."""
        if self.interactive and not self._agent_tried:
            self._agent_tried = True
            from pmemd.cli.ttyagent import start_tty_agent
            from pmemd.machine.runner import Runner

            self.agent = start_tty_agent(Runner())
        try:
            return self.client.call(method, path, *args, interactive=self.interactive,
                                    timeout=self.change_timeout)
        except BusError as err:
            raise _call_error(err, self.change_timeout) from None

    def regions(self) -> list[api.RegionRow]:
        [rows] = self.read(api.LIST_REGIONS)
        assert isinstance(rows, list)
        return [api.RegionRow.read(row) for row in rows]


def _print_json(document: Any) -> None:
    import json

    sys.stdout.write(json.dumps(document, indent=2) + "\n")


# --- commands -----------------------------------------------------------------------------


def cmd_status(session: Session, args: argparse.Namespace) -> int:
    props = session.properties(api.MANAGER_PATH, api.MANAGER_INTERFACE)
    regions = session.regions()
    if args.json:
        _print_json({**props, "Regions": [r.name for r in regions]})
    else:
        sys.stdout.write(render_status(props, regions))
    return OK


def cmd_regions(session: Session, args: argparse.Namespace) -> int:
    regions = [session.properties(r.path, api.REGION_INTERFACE) for r in session.regions()]
    if args.json:
        _print_json(regions)
    else:
        sys.stdout.write(render_regions(regions))
    return OK


def cmd_plan(session: Session, args: argparse.Namespace) -> int:
    import json

    [text] = session.read(api.GET_PLAN)
    document = json.loads(str(text))
    if args.json:
        _print_json(document)
    else:
        sys.stdout.write(render_plan(document))
    return OK


def cmd_apply(session: Session, args: argparse.Namespace) -> int:
    call = session.read if args.dry_run else session.change
    state, report = call(api.APPLY, api.MANAGER_PATH, args.dry_run)
    assert isinstance(report, list)
    if args.json:
        _print_json({"state": state, "dry_run": args.dry_run, "report": report})
    else:
        sys.stdout.write("".join(f"{line}\n" for line in report))
    return OK


def cmd_trial(session: Session, args: argparse.Namespace) -> int:
    """``pmemctl trial [status|retry|abort]``: the last trial boot, or what to do with it."""
    if args.action == "retry":
        state, report = session.change(api.RETRY_TRIAL, api.MANAGER_PATH)
        assert isinstance(report, list)
        if args.json:
            _print_json({"state": state, "report": report})
        else:
            sys.stdout.write("".join(f"{line}\n" for line in report))
        return OK
    if args.action == "abort":
        [trial] = session.change(api.ABORT_TRIAL, api.MANAGER_PATH)
        if args.json:
            _print_json({"Trial": trial})
        else:
            sys.stdout.write(f"Trial boot: {trial}; the default entry keeps its options\n")
        return OK
    props = session.properties(api.MANAGER_PATH, api.MANAGER_INTERFACE)
    found = {"Trial": props["Trial"], "TrialReason": props["TrialReason"]}
    if args.json:
        _print_json(found)
    else:
        why = str(found["TrialReason"])
        sys.stdout.write(f"Trial boot: {found['Trial']}" + (f": {why}" if why else "") + "\n")
    return OK


def cmd_validate(session: Session, args: argparse.Namespace) -> int:
    from pathlib import Path

    path = Path(args.file)
    try:
        text = _read_config_file(path)
        [rows] = session.read(api.VALIDATE, api.MANAGER_PATH, text)
    except CtlError as err:
        if err.status != INVALID_CONFIG:
            raise
        # the service locates problems in "<input>"; name the file the user gave
        located = str(err).replace(f"{api.VALIDATE_SOURCE}:", f"{path}:")
        if args.json:
            _print_json({"file": str(path), "valid": False, "errors": located.splitlines()})
            return INVALID_CONFIG
        raise CtlError(located, INVALID_CONFIG) from None
    assert isinstance(rows, list)
    warnings = [api.WarningRow.read(row) for row in rows]
    if args.json:
        _print_json({"file": str(path), "valid": True,
                     "warnings": [{"code": w.code, "region": w.region or None,
                                   "message": w.message} for w in warnings]})
    else:
        for warning in warnings:
            print(f"warning: {warning.message}", file=sys.stderr)
        print(f"{path}: valid")
    return OK


def _read_config_file(path: Path) -> str:
    """The text of the config file ``path``, read as pmemd reads its own: a regular file of
    at most :data:`CONFIG_LIMIT` bytes."""
    from pmemd.errors import UnreadableFile
    from pmemd.machine.files import read_regular

    try:
        data = read_regular(path, CONFIG_LIMIT)
    except UnreadableFile as err:
        raise CtlError(str(err)) from None
    return _wire_text(path, data)


def _wire_text(path: Path, data: bytes) -> str:
    """``data`` as a D-Bus string, which must be UTF-8 without NUL: what is neither is an
    invalid config, said here as ``pmemd validate`` says it (a test holds the two equal),
    since the service can never see it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line, column = _place(data[: err.start].decode("utf-8"))
        raise CtlError(f"{path}:{line}:{column}: not UTF-8: byte 0x{data[err.start]:02x} "
                       "cannot be decoded", INVALID_CONFIG) from None
    if "\0" in text:
        line, column = _place(text[: text.index("\0")])
        raise CtlError(f"{path}:{line}:{column}: character U+0000 is not allowed: pmemd.yaml "
                       "holds printable text only (no control characters)", INVALID_CONFIG)
    return text


def _place(before: str) -> tuple[int, int]:
    """Line and column of the character after ``before``, lines as YAML counts them."""
    lines = before.splitlines(keepends=True)
    if not lines or lines[-1].splitlines()[0] != lines[-1]:
        return len(lines) + 1, 1
    return len(lines), len(lines[-1]) + 1


def _region_path(session: Session, name: str) -> str:
    regions = session.regions()
    found = next((r for r in regions if r.name == name), None)
    if found is None:
        known = ", ".join(r.name for r in regions) or "none"
        raise CtlError(f"no region {name!r} (configured: {known})")
    return found.path


def cmd_mount(session: Session, args: argparse.Namespace) -> int:
    method = {"mount": api.MOUNT, "umount": api.UNMOUNT}[args.command]
    session.change(method, _region_path(session, args.name))
    if args.json:
        _print_json({"region": args.name, "action": args.command, "done": True})
    return OK


def cmd_format(session: Session, args: argparse.Namespace) -> int:
    session.change(api.FORMAT, _region_path(session, args.name), args.force)
    if args.json:
        _print_json({"region": args.name, "action": "format", "force": args.force,
                     "done": True})
    else:
        print(f"{args.name}: formatted")
    return OK


# --- the command line ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print a JSON document instead of text")
    common.add_argument("--no-ask-password", action="store_true", default=argparse.SUPPRESS,
                        help="do not let polkit ask for a password")
    common.add_argument("--timeout", type=_seconds, default=argparse.SUPPRESS,
                        metavar="SECONDS",
                        help=f"wait at most SECONDS for the bus and the service to answer "
                             f"(default: {QUERY_TIMEOUT:g} for queries, {CHANGE_TIMEOUT:g} "
                             "for changes; 0: no limit)")
    parser = argparse.ArgumentParser(
        prog="pmemctl", parents=[common],
        description="Query and control the pmemd service (emulated persistent memory).",
        epilog="The service is io.pmemd1 on the system bus ($DBUS_SYSTEM_BUS_ADDRESS). "
               "Exit status: 0 success, 1 failure (service absent, access denied, request "
               "failed, no answer in time), 2 usage, 3 invalid config (validate).")
    parser.add_argument("--version", action="version", version=f"pmemctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("status", parents=[common], help="overall state (the default)"
                   ).set_defaults(run=cmd_status)
    sub.add_parser("regions", parents=[common], help="one line per configured region"
                   ).set_defaults(run=cmd_regions)
    sub.add_parser("plan", parents=[common], help="what the next boot needs, and why"
                   ).set_defaults(run=cmd_plan)
    apply = sub.add_parser("apply", parents=[common],
                           help="make the boot configuration match the config now")
    apply.add_argument("--dry-run", action="store_true",
                       help="only show what would be written and run")
    apply.set_defaults(run=cmd_apply)
    trial = sub.add_parser("trial", parents=[common],
                           help="the last trial boot of new options; retry or abort it")
    trial.add_argument("action", nargs="?", choices=("status", "retry", "abort"),
                       default="status")
    trial.set_defaults(run=cmd_trial)
    validate = sub.add_parser("validate", parents=[common],
                              help="check FILE as a config for this machine")
    validate.add_argument("file", metavar="FILE")
    validate.set_defaults(run=cmd_validate)
    for name, text in (("mount", "mount region NAME's filesystem"),
                       ("umount", "unmount region NAME's filesystem")):
        command = sub.add_parser(name, parents=[common], help=text)
        command.add_argument("name", metavar="NAME")
        command.set_defaults(run=cmd_mount)
    fmt = sub.add_parser("format", parents=[common],
                         help="make a fresh filesystem on region NAME (destroys its data)")
    fmt.add_argument("name", metavar="NAME")
    fmt.add_argument("--force", action="store_true",
                     help="also when mounted: unmount, format, mount again")
    fmt.set_defaults(run=cmd_format)
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("must be 0 (no limit) or a positive number of "
                                         "seconds")
    return value


def _run(args: argparse.Namespace) -> int:
    connect_timeout, _ = _timeouts(args.timeout)
    try:
        client = Client(api.BUS_NAME, timeout=connect_timeout)
    except BusError as err:
        raise _error(err) from None
    session = Session(client, interactive=not args.no_ask_password and sys.stdin.isatty(),
                      timeout=args.timeout)
    try:
        status: int = args.run(session, args)
        return status
    finally:
        if session.agent is not None:
            session.agent.stop()
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    args.no_ask_password = getattr(args, "no_ask_password", False)
    args.timeout = getattr(args, "timeout", None)
    if args.command is None:
        args.command, args.run = "status", cmd_status
    try:
        return _run(args)
    except CtlError as err:
        print(f"pmemctl: {err}" if err.status != INVALID_CONFIG else str(err),
              file=sys.stderr)
        return err.status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
