"""Who may change the machine over D-Bus: polkit decides; without polkit, only root.

A mutating D-Bus method asks :meth:`Authority.check` before it does anything. The caller
is identified by its unique bus name (polkit's ``system-bus-name`` subject), so polkit
looks the process up itself; pmemd never trusts anything the caller says about itself.

* uid 0 is always allowed (polkit says the same; asking it would only cost a round trip).
* Otherwise ``org.freedesktop.PolicyKit1.Authority.CheckAuthorization`` decides, with
  ``AllowUserInteraction`` when the caller's message carries the D-Bus
  ``ALLOW_INTERACTIVE_AUTHORIZATION`` flag (``pmemctl`` sets it on a terminal, like
  ``systemctl``), so an authentication agent can ask for a password.
* No polkit on the bus (not running and not activatable): only uid 0 may mutate.

Every refusal raises :class:`NotAuthorized`, which D-Bus callers receive as
``org.freedesktop.DBus.Error.AccessDenied`` — never a silent ``false``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import MessageType
from dbus_next.message import Message
from dbus_next.signature import Variant

from pmemd.errors import NotAuthorized

log = logging.getLogger(__name__)
POLKIT_NAME = "org.freedesktop.PolicyKit1"
POLKIT_PATH = "/org/freedesktop/PolicyKit1/Authority"
POLKIT_INTERFACE = "org.freedesktop.PolicyKit1.Authority"
CHECK_ALLOW_USER_INTERACTION = 0x1  # CheckAuthorizationFlags
# Replies that mean "there is no polkit on this bus" rather than "polkit said no".
POLKIT_ABSENT_ERRORS = frozenset({
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
})


class Action(StrEnum):
    """The polkit actions of ``io.pmemd1.policy`` (one per kind of change)."""

    MANAGE = "io.pmemd1.manage"  # SetConfig, Apply, Reload
    MOUNT = "io.pmemd1.mount"  # Region.Mount, Region.Unmount
    FORMAT = "io.pmemd1.format"  # Region.Format: destroys data, always admin auth


ACTION_TEXT = {
    Action.MANAGE: "change pmemd's configuration and the kernel command line",
    Action.MOUNT: "mount or unmount a persistent-memory region",
    Action.FORMAT: "format a persistent-memory region (destroys its data)",
}


@dataclass(frozen=True)
class Caller:
    """Who sent a method call: its unique bus name and whether it lets polkit ask."""

    sender: str
    interactive: bool = False


@dataclass(frozen=True)
class PolkitReply:
    """``CheckAuthorization``'s answer (``None`` when polkit is not on the bus)."""

    authorized: bool
    challenge: bool  # authentication would have made it authorized
    dismissed: bool = False  # the user dismissed the authentication dialog


def decide(action: Action, uid: int | None, reply: PolkitReply | None,
           polkit_error: str | None = None) -> str | None:
    """(pure) ``None`` when allowed, else the reason for the refusal, for a human."""
    if uid == 0:
        return None
    what = ACTION_TEXT[action]
    if polkit_error is not None:
        return f"not allowed to {what}: polkit could not decide ({polkit_error})"
    if reply is None:
        return (f"not allowed to {what}: polkit is not running on the system bus, "
                "so only root may do this")
    if reply.authorized:
        return None
    if reply.dismissed:
        return f"not allowed to {what}: authentication was dismissed"
    if reply.challenge:
        return (f"not allowed to {what}: authentication is required ({action.value}); "
                "run as root, or from a terminal or desktop with a polkit "
                "authentication agent")
    return f"not allowed to {what}: polkit denies {action.value} to this caller"


class Authority:
    """Checks callers against polkit on ``bus`` (the bus the service answers on)."""

    def __init__(self, bus: MessageBus) -> None:
        self.bus = bus

    async def check(self, caller: Caller, action: Action) -> None:
        """Return when ``caller`` may do ``action``; raise :class:`NotAuthorized` if not."""
        uid = await self.caller_uid(caller.sender)
        reply: PolkitReply | None = None
        error: str | None = None
        if uid != 0:
            reply, error = await self._ask_polkit(caller, action)
        refusal = decide(action, uid, reply, error)
        if refusal is not None:
            log.info("refused %s to %s (uid %s): %s", action.value, caller.sender, uid, refusal)
            raise NotAuthorized(refusal)

    async def caller_uid(self, sender: str) -> int | None:
        reply = await self.bus.call(Message(
            destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
            interface="org.freedesktop.DBus", member="GetConnectionUnixUser",
            signature="s", body=[sender]))
        if reply is None or reply.message_type is not MessageType.METHOD_RETURN:
            return None
        uid: int = reply.body[0]
        return uid

    async def _ask_polkit(self, caller: Caller,
                          action: Action) -> tuple[PolkitReply | None, str | None]:
        subject = ["system-bus-name", {"name": Variant("s", caller.sender)}]
        flags = CHECK_ALLOW_USER_INTERACTION if caller.interactive else 0
        reply = await self.bus.call(Message(
            destination=POLKIT_NAME, path=POLKIT_PATH, interface=POLKIT_INTERFACE,
            member="CheckAuthorization", signature="(sa{sv})sa{ss}us",
            body=[subject, action.value, {}, flags, ""]))
        if reply is None:
            return None, "no reply"
        if reply.message_type is MessageType.ERROR:
            if reply.error_name in POLKIT_ABSENT_ERRORS:
                return None, None
            text = reply.body[0] if reply.body else ""
            return None, f"{reply.error_name}: {text}"
        authorized, challenge, details = reply.body[0]
        dismissed = details.get("polkit.dismissed", "") == "true"
        return PolkitReply(bool(authorized), bool(challenge), dismissed), None
