"""Clocks, behind one small interface so that tests drive time instead of sleeping.

Stored times are UTC integer milliseconds (invariant 5). ``wall_ms`` is the server's UTC
clock; ``monotonic`` never jumps and is used for durations and timeouts.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_MS = 86_400_000


class Clock(Protocol):
    def wall_ms(self) -> int: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, wall_ms: int = 1_767_225_600_000) -> None:  # 2026-01-01T00:00Z
        self._wall = wall_ms
        self._mono = 1000.0
        self._lock = threading.Lock()

    def wall_ms(self) -> int:
        with self._lock:
            return self._wall

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._wall += int(round(seconds * 1000))
            self._mono += seconds

    def set_wall_ms(self, wall_ms: int) -> None:
        with self._lock:
            self._wall = wall_ms


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("naive datetime: give a time zone (stored times are UTC)")
    return int(dt.timestamp() * 1000)


def iso_utc(ms: int) -> str:
    return ms_to_datetime(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> int:
    """Parse an ISO 8601 time (a naive one is taken as Asia/Shanghai, as users read it)
    or integer UTC milliseconds, into UTC ms."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(f"{text!r} is not an ISO 8601 time or UTC milliseconds") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return datetime_to_ms(dt)
