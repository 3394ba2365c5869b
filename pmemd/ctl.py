"""``pmemctl``: the client of the D-Bus service io.pmemd1, like ``hostnamectl``.

Every command is one or a few method calls; the service does the work (and asks polkit).
Reading needs no privilege. Changes carry the D-Bus ``ALLOW_INTERACTIVE_AUTHORIZATION``
flag when standing at a terminal (as ``systemctl`` does), with ``pkttyagent`` started for
this process (:mod:`pmemd.ttyagent`), so polkit may ask for a password there;
``--no-ask-password`` turns both off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import BusType, MessageFlag, MessageType
from dbus_next.message import Message
from dbus_next.signature import Variant

from pmemd import __version__
from pmemd.report import table
from pmemd.runner import Runner
from pmemd.service import (
    BUS_NAME,
    MANAGER_INTERFACE,
    MANAGER_PATH,
    REGION_INTERFACE,
    VALIDATE_SOURCE,
    region_path,
)
from pmemd.sizes import format_bytes
from pmemd.ttyagent import TtyAgent, start_tty_agent

PROPERTIES = "org.freedesktop.DBus.Properties"
ABSENT = ("org.freedesktop.DBus.Error.ServiceUnknown",
          "org.freedesktop.DBus.Error.NameHasNoOwner")
ACCESS_DENIED = ("org.freedesktop.DBus.Error.AccessDenied",
                 "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")


class Exit(IntEnum):
    OK = 0
    FAILURE = 1  # the service is absent, refused (access denied) or failed
    USAGE = 2
    INVALID_CONFIG = 3  # validate: the file is not a valid config for this machine


class CtlError(Exception):
    """A failure to report on one line (or a few) and exit with ``status``."""

    def __init__(self, message: str, status: Exit = Exit.FAILURE) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Client:
    bus: MessageBus
    interactive: bool
    agent: TtyAgent | None = None
    agent_tried: bool = False

    async def call(self, path: str, interface: str, member: str, signature: str = "",
                   body: Sequence[Any] = (), *, mutating: bool = False) -> list[Any]:
        flags = MessageFlag.NONE
        if mutating and self.interactive:
            flags = MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION
            if not self.agent_tried:  # a password prompt on this terminal, if polkit asks
                self.agent_tried = True
                self.agent = start_tty_agent(Runner())
        reply = await self.bus.call(Message(destination=BUS_NAME, path=path,
                                            interface=interface, member=member,
                                            signature=signature, body=list(body),
                                            flags=flags))
        assert reply is not None
        if reply.message_type is MessageType.ERROR:
            raise _error(reply.error_name or "", reply.body[0] if reply.body else "")
        return list(reply.body)

    async def properties(self, path: str, interface: str) -> dict[str, Any]:
        [values] = await self.call(path, PROPERTIES, "GetAll", "s", [interface])
        return {name: _plain(value) for name, value in values.items()}


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Variant) else value


def _error(name: str, text: str) -> CtlError:
    if name in ABSENT:
        return CtlError(f"the pmemd service ({BUS_NAME}) is not available on the system bus "
                        f"and cannot be started by it: {text}\n"
                        "Is pmemd installed? See 'systemctl status pmemd.service'.")
    if name in ACCESS_DENIED:
        return CtlError(f"access denied: {text}" if text and text != "Access denied"
                        else "access denied")
    if name == "io.pmemd1.Error.InvalidConfig":
        return CtlError(text, Exit.INVALID_CONFIG)
    if name == "org.freedesktop.DBus.Error.NoReply":
        return CtlError(f"the pmemd service did not answer: {text}")
    return CtlError(f"{text} ({name})" if name.startswith("org.freedesktop") else text)


async def connect() -> MessageBus:
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/dbus/system_bus_socket")
    try:
        bus: MessageBus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    except (OSError, ValueError, EOFError) as err:
        raise CtlError(f"cannot connect to the system bus ({address}): {err}; is dbus "
                       "running?") from None
    return bus


# --- commands -----------------------------------------------------------------------------

_LABELS = ("State", "Reboot required", "Bootloader", "Config", "Running with", "Next boot",
           "Regions", "Warning", "Problem", "Read error", "Version")
_WIDTH = max(len(label) for label in _LABELS)


def _field(label: str, value: str) -> str:
    return f"{label.rjust(_WIDTH)}: {value}"


def render_status(props: dict[str, Any], regions: list[list[Any]]) -> str:
    """(pure) ``pmemctl status`` as ``hostnamectl`` lays it out."""
    ready = sum(1 for r in regions if r[7] == "ready")
    boot = props["Bootloader"] or "none detected"
    lines = [
        _field("State", props["State"]),
        _field("Reboot required", "yes" if props["RebootRequired"] else "no"),
        _field("Bootloader", f"{boot} ({props['BootloaderReason']})"
               if props["BootloaderReason"] else boot),
        _field("Config", props["ConfigPath"]),
        _field("Running with", " ".join(props["CurrentMemmap"]) or "no memmap= option"),
        _field("Next boot", " ".join(props["DesiredMemmap"]) or "no memmap= option"),
        _field("Regions", f"{len(regions)} configured, {ready} ready"),
    ]
    lines += [_field("Warning", message) for _code, _region, message in props["Warnings"]]
    for message, key, file, line, column in props["Problems"]:
        where = f"{file}:{line}:{column}: " if file else ""
        lines.append(_field("Problem", f"{where}{key + ': ' if key else ''}{message}"))
    if props["ReadError"]:
        lines.append(_field("Read error", props["ReadError"]))
    lines.append(_field("Version", props["Version"]))
    return "\n".join(lines) + "\n"


async def cmd_status(client: Client, args: argparse.Namespace) -> int:
    props = await client.properties(MANAGER_PATH, MANAGER_INTERFACE)
    [regions] = await client.call(MANAGER_PATH, MANAGER_INTERFACE, "ListRegions")
    if args.json:
        names = [r[0] for r in regions]
        _print_json({**props, "Regions": names})
    else:
        sys.stdout.write(render_status(props, regions))
    return Exit.OK


def render_regions(regions: list[dict[str, Any]]) -> str:
    """(pure) ``pmemctl regions``: one line per region, then why any is not ready."""
    if not regions:
        return "No regions configured.\n"
    rows = [[r["Name"], format_bytes(r["Size"]),
             f"0x{r['Offset']:x}-0x{r['Offset'] + r['Size'] - 1:x}", r["Device"] or "-",
             r["Mountpoint"] or "-", r["FilesystemType"] or "-", r["State"],
             "yes" if r["Dax"] else "no"] for r in regions]
    out = [table(["NAME", "SIZE", "RANGE", "DEVICE", "MOUNTPOINT", "FS", "STATE", "DAX"], rows,
                 indent="")]
    out += [f"{r['Name']}: {r['StateReason']}" for r in regions if r["State"] != "ready"]
    return "\n".join(out) + "\n"


async def _regions(client: Client) -> list[dict[str, Any]]:
    [listed] = await client.call(MANAGER_PATH, MANAGER_INTERFACE, "ListRegions")
    return [await client.properties(path, REGION_INTERFACE) for _name, path, *_ in listed]


async def cmd_regions(client: Client, args: argparse.Namespace) -> int:
    regions = await _regions(client)
    if args.json:
        _print_json(regions)
    else:
        sys.stdout.write(render_regions(regions))
    return Exit.OK


def render_plan(document: dict[str, Any]) -> str:
    """(pure) The plan document, as a short report."""
    out = []
    boot = document.get("bootloader") or {}
    out.append(f"Bootloader: {boot.get('reason') or 'unknown'}")
    regions = document["regions"]
    if regions:
        rows = [[r["name"], f"{r['start_hex']}-{r['end_hex']}", format_bytes(r["size"]),
                 r["memmap"], "yes" if r["on_running_cmdline"] else "no"] for r in regions]
        out += ["Regions:", table(["NAME", "RANGE", "SIZE", "MEMMAP", "ACTIVE"], rows)]
    else:
        out.append("Regions: none configured")
    marks = {"add": "+", "remove": "-", "keep": "="}
    out.append("Kernel command line (next boot):")
    out += [f"  {marks.get(c['action'], '?')} {c['argument']}  {c['reason']}"
            for c in document["changes"]] or ["  nothing to change"]
    out += [f"  left alone (not written by pmemd): {f['argument']}"
            for f in document["foreign"]]
    out += [f"Warning: {w['message']}" for w in document["warnings"]]
    for problem in document["problems"]:
        where = f"{problem['file']}:{problem['line']}:{problem['column']}: " \
            if problem["file"] else ""
        out.append(f"Problem: {where}{problem['key'] + ': ' if problem['key'] else ''}"
                   f"{problem['message']}")
    out.append(f"State: {document['state']}"
               + (" (a reboot is required)" if document["reboot_required"] else ""))
    return "\n".join(out) + "\n"


async def cmd_plan(client: Client, args: argparse.Namespace) -> int:
    [text] = await client.call(MANAGER_PATH, MANAGER_INTERFACE, "GetPlan")
    document = json.loads(text)
    if args.json:
        _print_json(document)
    else:
        sys.stdout.write(render_plan(document))
    return Exit.OK


async def cmd_apply(client: Client, args: argparse.Namespace) -> int:
    state, report = await client.call(MANAGER_PATH, MANAGER_INTERFACE, "Apply", "b",
                                      [args.dry_run], mutating=not args.dry_run)
    if args.json:
        _print_json({"state": state, "dry_run": args.dry_run, "report": report})
    else:
        sys.stdout.write("".join(f"{line}\n" for line in report))
    return Exit.OK


async def cmd_validate(client: Client, args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as err:
        raise CtlError(f"{path}: {err.strerror}") from None
    try:
        [warnings] = await client.call(MANAGER_PATH, MANAGER_INTERFACE, "Validate", "s", [text])
    except CtlError as err:
        if err.status is not Exit.INVALID_CONFIG:
            raise
        # the service locates problems in "<input>"; name the file the user gave
        located = str(err).replace(f"{VALIDATE_SOURCE}:", f"{path}:")
        if args.json:
            _print_json({"file": str(path), "valid": False, "errors": located.splitlines()})
            return Exit.INVALID_CONFIG
        raise CtlError(located, Exit.INVALID_CONFIG) from None
    if args.json:
        _print_json({"file": str(path), "valid": True,
                     "warnings": [{"code": c, "region": r or None, "message": m}
                                  for c, r, m in warnings]})
    else:
        for _code, _region, message in warnings:
            print(f"warning: {message}", file=sys.stderr)
        print(f"{path}: valid")
    return Exit.OK


async def _region_call(client: Client, name: str, member: str, signature: str = "",
                       body: Sequence[Any] = ()) -> None:
    [listed] = await client.call(MANAGER_PATH, MANAGER_INTERFACE, "ListRegions")
    if name not in (r[0] for r in listed):
        known = ", ".join(r[0] for r in listed) or "none"
        raise CtlError(f"no region {name!r} (configured: {known})")
    await client.call(region_path(name), REGION_INTERFACE, member, signature, body,
                      mutating=True)


async def cmd_mount(client: Client, args: argparse.Namespace) -> int:
    member = {"mount": "Mount", "umount": "Unmount"}[args.command]
    await _region_call(client, args.name, member)
    if args.json:
        _print_json({"region": args.name, "action": args.command, "done": True})
    return Exit.OK


async def cmd_format(client: Client, args: argparse.Namespace) -> int:
    await _region_call(client, args.name, "Format", "b", [args.force])
    if args.json:
        _print_json({"region": args.name, "action": "format", "force": args.force,
                     "done": True})
    else:
        print(f"{args.name}: formatted")
    return Exit.OK


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


# --- the command line ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print a JSON document instead of text")
    common.add_argument("--no-ask-password", action="store_true", default=argparse.SUPPRESS,
                        help="do not let polkit ask for a password")
    parser = argparse.ArgumentParser(
        prog="pmemctl", parents=[common],
        description="Query and control the pmemd service (emulated persistent memory).",
        epilog="The service is io.pmemd1 on the system bus ($DBUS_SYSTEM_BUS_ADDRESS). "
               "Exit status: 0 success, 1 failure (service absent, access denied, request "
               "failed), 2 usage, 3 invalid config (validate).")
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


async def _run(args: argparse.Namespace) -> int:
    bus = await connect()
    client = Client(bus, interactive=not args.no_ask_password and sys.stdin.isatty())
    try:
        status: int = await args.run(client, args)
        return status
    finally:
        if client.agent is not None:
            client.agent.stop()
        bus.disconnect()  # type: ignore[no-untyped-call]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.json = getattr(args, "json", False)
    args.no_ask_password = getattr(args, "no_ask_password", False)
    if args.command is None:
        args.command, args.run = "status", cmd_status
    try:
        return asyncio.run(_run(args))
    except CtlError as err:
        print(f"pmemctl: {err}" if err.status is not Exit.INVALID_CONFIG else str(err),
              file=sys.stderr)
        return err.status
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
