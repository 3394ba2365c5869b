"""One D-Bus method call as a separate process, e.g. as ``nobody`` (setpriv), for the tests.

    python -m tests.dbus.client ADDRESS PATH INTERFACE MEMBER [SIGNATURE [JSON-BODY]]
        [--destination NAME] [--interactive] [--own NAME]

Prints the reply as JSON: ``{"body": [...], "error": null|NAME, "text": "..."}``.
``--own NAME`` asks the bus for NAME instead of calling a method (RequestName's reply, or
the bus's error, in the same form).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from dbus_next.signature import Variant

from tests.dbus.harness import BUS_NAME, Reply, acall, connect


async def own(address: str, name: str) -> Reply:
    bus = await connect(address)
    try:
        return await acall(bus, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                           "RequestName", "su", [name, 4], destination="org.freedesktop.DBus")
    finally:
        bus.disconnect()  # type: ignore[no-untyped-call]


async def run(args: argparse.Namespace) -> Reply:
    if args.own:
        return await own(args.address, args.own)
    bus = await connect(args.address)
    try:
        return await acall(bus, args.path, args.interface, args.member, args.signature,
                           json.loads(args.body), destination=args.destination,
                           interactive=args.interactive)
    finally:
        bus.disconnect()  # type: ignore[no-untyped-call]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("path", nargs="?", default="/")
    parser.add_argument("interface", nargs="?", default="")
    parser.add_argument("member", nargs="?", default="")
    parser.add_argument("signature", nargs="?", default="")
    parser.add_argument("body", nargs="?", default="[]")
    parser.add_argument("--destination", default=BUS_NAME)
    parser.add_argument("--interactive", action="store_true")
    parser.add_argument("--own", metavar="NAME")
    args = parser.parse_args()
    reply = asyncio.run(run(args))
    print(json.dumps({"body": reply.body, "error": reply.error, "text": reply.text},
                     default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, Variant):
        return value.value
    raise TypeError(f"cannot show {value!r}")


if __name__ == "__main__":
    main()
