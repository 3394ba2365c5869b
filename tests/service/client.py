"""One D-Bus method call as a separate process, e.g. as ``nobody`` (setpriv), for the tests.

    python -m tests.service.client ADDRESS PATH INTERFACE MEMBER [SIGNATURE [JSON-BODY]]
        [--destination NAME] [--interactive] [--agent] [--own NAME]

Prints the reply as JSON: ``{"body": [...], "error": null|NAME, "text": "...",
"agent": [...]}``. ``--own NAME`` asks the bus for NAME instead of calling a method
(RequestName's reply, or the bus's error, in the same form). ``--agent`` first registers
this process with polkit as its authentication agent (as ``pkttyagent --process`` does);
the agent records what polkit asks it (``agent``: action id and message) and declines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

from dbus_next.aio.message_bus import MessageBus
from dbus_next.errors import DBusError
from dbus_next.service import ServiceInterface, method
from dbus_next.signature import Variant

from tests.service.harness import BUS_NAME, Reply, acall, connect

AGENT_PATH = "/io/pmemd1/test/agent"


def signature(**params: str) -> Callable[[Any], Any]:
    def apply(fn: Any) -> Any:
        fn.__annotations__ = {**params, "return": ""}
        return fn
    return apply


class Agent(ServiceInterface):
    """A polkit authentication agent that never authenticates anyone."""

    def __init__(self) -> None:
        super().__init__("org.freedesktop.PolicyKit1.AuthenticationAgent")
        self.asked: list[list[str]] = []

    @method()  # type: ignore[untyped-decorator]
    @signature(action_id="s", message="s", icon_name="s", details="a{ss}", cookie="s",
               identities="a(sa{sv})")
    def BeginAuthentication(self, action_id: str, message: str, icon_name: str,
                            details: dict[str, str], cookie: str,
                            identities: list[Any]) -> None:
        self.asked.append([action_id, message])
        raise DBusError("org.freedesktop.PolicyKit1.Error.Cancelled",  # type: ignore[no-untyped-call]
                        "the test agent declines")

    @method()  # type: ignore[untyped-decorator]
    @signature(cookie="s")
    def CancelAuthentication(self, cookie: str) -> None:
        pass


async def register_agent(bus: MessageBus) -> Agent:
    agent = Agent()
    bus.export(AGENT_PATH, agent)
    with open("/proc/self/stat") as stat:  # start time: field 22, after "(comm)"
        start_time = int(stat.read().rpartition(")")[2].split()[19])
    subject = ["unix-process", {"pid": Variant("u", os.getpid()),
                                "start-time": Variant("t", start_time),
                                "uid": Variant("i", os.getuid())}]
    (await acall(bus, "/org/freedesktop/PolicyKit1/Authority",
                 "org.freedesktop.PolicyKit1.Authority", "RegisterAuthenticationAgent",
                 "(sa{sv})ss", [subject, "C", AGENT_PATH],
                 destination="org.freedesktop.PolicyKit1")).ok()
    return agent


async def own(address: str, name: str) -> Reply:
    bus = await connect(address)
    try:
        return await acall(bus, "/org/freedesktop/DBus", "org.freedesktop.DBus",
                           "RequestName", "su", [name, 4], destination="org.freedesktop.DBus")
    finally:
        bus.disconnect()  # type: ignore[no-untyped-call]


async def run(args: argparse.Namespace) -> tuple[Reply, list[list[str]]]:
    if args.own:
        return await own(args.address, args.own), []
    bus = await connect(args.address)
    try:
        agent = await register_agent(bus) if args.agent else None
        reply = await acall(bus, args.path, args.interface, args.member, args.signature,
                            json.loads(args.body), destination=args.destination,
                            interactive=args.interactive)
        return reply, agent.asked if agent is not None else []
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
    parser.add_argument("--agent", action="store_true")
    parser.add_argument("--own", metavar="NAME")
    args = parser.parse_args()
    reply, asked = asyncio.run(run(args))
    print(json.dumps({"body": reply.body, "error": reply.error, "text": reply.text,
                      "agent": asked}, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, Variant):
        return value.value
    raise TypeError(f"cannot show {value!r}")


if __name__ == "__main__":
    main()
