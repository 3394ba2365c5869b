"""One job at a time, however often it is asked for: the service's readings of the machine
and its reloads.

A request made while the job runs does not start a second run beside it, nor queue one run
per request: every request made meanwhile is answered by one more run, started when the
current one ends — so each caller gets a result at least as new as its request, and a burst
of requests (a hundred calls, a storm of mount events) costs at most two runs. A minimum
``spacing`` between the starts of runs turns that into a rate limit; :meth:`soon` debounces
(requests within ``delay`` make one).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Coalesced(Generic[T]):
    """``job`` (a coroutine function) run at most once at a time, on the running loop."""

    def __init__(self, job: Callable[[], Awaitable[T]], *, spacing: float = 0.0) -> None:
        self.job = job
        self.spacing = spacing
        self.runs = 0  # how many runs started, for logs and tests
        self._current: asyncio.Future[T] | None = None  # the run in progress
        self._next: asyncio.Future[T] | None = None  # the run that answers later requests
        self._last_start: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None  # runs the job while requests come

    @property
    def running(self) -> bool:
        return self._current is not None

    def request(self) -> asyncio.Future[T]:
        """A run that starts after this call (now, or when the current run ends); the
        future is its result. Awaiting it is optional: an unawaited request still runs."""
        if self._current is None:
            self._current = asyncio.get_running_loop().create_future()
            self._task = asyncio.ensure_future(self._run())
            return self._current
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        return self._next

    def soon(self, delay: float) -> None:
        """A request ``delay`` seconds from now, shared by every call until then."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.request()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._current is not None:
            if self._last_start is not None and self.spacing > 0:
                wait = self._last_start + self.spacing - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._last_start = loop.time()
            self.runs += 1
            done = self._current
            try:
                result = await self.job()
            except Exception as err:  # the job's callers get the error, the loop goes on
                if not done.done():
                    done.set_exception(err)
                    done.exception()  # retrieved: a request nobody awaits is not a leak
            else:
                if not done.done():
                    done.set_result(result)
            self._current, self._next = self._next, None

    def cancel(self) -> None:
        """No more runs after the current one (the service is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
