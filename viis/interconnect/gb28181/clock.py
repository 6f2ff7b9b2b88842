"""Injectable clocks: SIP timers and keepalive checks run on one of these.

``LoopClock`` uses the running asyncio loop; ``ManualClock`` is advanced by hand in tests,
so a 32 s Timer F or three missed 60 s keepalives take no real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""

    def wall(self) -> float:
        """Unix epoch seconds (for Date headers)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop or asyncio.get_running_loop()

    def now(self) -> float:
        return self.loop.time()

    def wall(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self.loop.call_later(max(0.0, delay), callback)


class _ManualHandle:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that only moves when ``advance`` is called; fires due callbacks in order."""

    def __init__(self, start: float = 1000.0, wall: float = 1_714_536_000.0) -> None:
        self._now = start
        self._wall0 = wall - start
        self._heap: list[tuple[float, int, _ManualHandle, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._wall0 + self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> _ManualHandle:
        h = _ManualHandle()
        heapq.heappush(self._heap, (self._now + max(0.0, delay), next(self._seq), h, callback))
        return h

    def advance(self, seconds: float) -> None:
        end = self._now + seconds
        while self._heap and self._heap[0][0] <= end:
            when, _, h, cb = heapq.heappop(self._heap)
            self._now = max(self._now, when)
            if not h.cancelled:
                cb()
        self._now = end

    def pending(self) -> int:
        return sum(1 for e in self._heap if not e[2].cancelled)
