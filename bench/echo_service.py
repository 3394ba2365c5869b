"""The baseline for bench/dbus.py: the most trivial dbus-next service there is.

One object, one interface, a method that returns its argument and a read-only property,
on the same bus, in the same interpreter, with the same library as pmemd's service; what
pmemd costs more than this is pmemd's own work.

    python bench/echo_service.py ADDRESS
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from dbus_next.aio.message_bus import MessageBus
from dbus_next.constants import NameFlag, PropertyAccess
from dbus_next.service import ServiceInterface, dbus_property, method

NAME = "bench.pmemd.Echo"
PATH = "/bench/pmemd/Echo"
INTERFACE = "bench.pmemd.Echo"


def signature(returns: str, **params: str) -> Callable[[Any], Any]:
    """D-Bus signatures as dbus-next reads them (from ``__annotations__``)."""
    def apply(fn: Any) -> Any:
        fn.__annotations__ = {**params, "return": returns}
        return fn
    return apply


class Echo(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(INTERFACE)

    @method()  # type: ignore[untyped-decorator]
    @signature("s", text="s")
    def Echo(self, text: str) -> str:
        return text

    @dbus_property(access=PropertyAccess.READ)  # type: ignore[untyped-decorator]
    @signature("s")
    def Value(self) -> str:
        return "converged"


async def serve(address: str) -> None:
    bus = await MessageBus(bus_address=address).connect()
    bus.export(PATH, Echo())
    await bus.request_name(NAME, NameFlag.DO_NOT_QUEUE)
    await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
