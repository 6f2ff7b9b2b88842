"""``drop`` with ``refuse_s`` while clients keep reconnecting (regression).

The server used to abort (``munmap_chunk(): invalid pointer``) as soon as a
client sent OPTIONS to a refusing camera: GstRtspServer frees the stack
allocated response of a refused OPTIONS.  OPTIONS is now always answered
and the refusal starts at DESCRIBE.  These tests use their own fleet, so a
crash cannot take the shared one down with it.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.parse

import numpy as np
import pytest

from viis.media.rtsp import RtspSession, RtspStatusError
from viis.simcam import SimFleet
from viis.simcam.fleet import _rtsp_request


@pytest.fixture(scope="module")
def drop_fleet(simcam_cache):
    # same clip spec as the shared fleet (conftest): the clips are reused
    f = SimFleet(3, width=320, height=180, fps=25, gop_s=1.0, cycle_s=6.0, cache_dir=simcam_cache)
    f.start()
    try:
        yield f
    finally:
        f.stop()


class Reconnector:
    """An RTSP client that reconnects ``retry_s`` after every failure and,
    with ``hold_s``, also closes and reconnects every ``hold_s`` while
    playing.  Times are ``time.monotonic()``."""

    def __init__(self, url: str, *, hold_s: float | None = None, retry_s: float = 0.3) -> None:
        self.url = url
        self.hold_s = hold_s
        self.retry_s = retry_s
        self.starts: list[float] = []  # PLAY answered
        self.failures: list[tuple[float, BaseException]] = []
        self.units: list[float] = []  # access units received

    async def run(self) -> None:
        while True:
            session = RtspSession(self.url, timeout=3, stall_timeout=4)
            try:
                await session.start()
                self.starts.append(time.monotonic())
                until = time.monotonic() + self.hold_s if self.hold_s else None
                async for _ in session:
                    self.units.append(time.monotonic())
                    if until is not None and time.monotonic() >= until:
                        break
            except Exception as exc:  # noqa: BLE001 - recorded for the test
                self.failures.append((time.monotonic(), exc))
                await asyncio.sleep(self.retry_s)
            finally:
                await session.close()

    def refusals(self, t0: float, t1: float) -> list[float]:
        return [
            t
            for t, exc in self.failures
            if t0 <= t <= t1 and isinstance(exc, RtspStatusError) and exc.status == 503
        ]

    def units_between(self, t0: float, t1: float) -> list[float]:
        return [t for t in self.units if t0 <= t <= t1]


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _stop(tasks) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _max_gap(times: list[float]) -> float:
    return float(np.diff(times).max()) if len(times) > 1 else float("inf")


def _request(url: str, method: str, cseq: int, sock, reader) -> int:
    return _rtsp_request(sock, reader, method, url, cseq, {})[0]


def test_options_to_a_refusing_camera_is_answered_and_describe_refused(drop_fleet):
    url = drop_fleet.url(2)
    parts = urllib.parse.urlsplit(url)
    pid = drop_fleet.pid
    drop_fleet.inject(2, "drop", refuse_s=2.0)
    try:
        for _ in range(5):
            with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
                sock.settimeout(5)
                reader = sock.makefile("rb")
                assert _request(url, "OPTIONS", 1, sock, reader) == 200
                assert _request(url, "DESCRIBE", 2, sock, reader) == 503
                assert _request(url, "OPTIONS", 3, sock, reader) == 200
        assert drop_fleet.running and drop_fleet.pid == pid
    finally:
        drop_fleet.clear(2, "drop")


def test_drop_with_refusal_survives_clients_reconnecting_in_the_window(drop_fleet):
    """The reproduction of the crash: a client keeps reconnecting to a camera
    across the refusal window of a ``drop`` while another camera streams."""
    pid = drop_fleet.pid
    refuse_s = 3.0

    async def scenario():
        dropped = Reconnector(drop_fleet.url(0), retry_s=0.3)
        steady = Reconnector(drop_fleet.url(1))
        tasks = [asyncio.create_task(c.run()) for c in (dropped, steady)]
        try:
            await _until(
                lambda: len(dropped.units) >= 10 and len(steady.units) >= 10, 15, "both streams"
            )
            t_drop = time.monotonic()
            state = await asyncio.to_thread(drop_fleet.inject, 0, "drop", refuse_s=refuse_s)
            assert state["refusing"]
            window_end = t_drop + refuse_s
            for _ in range(int(refuse_s + 4)):
                await asyncio.sleep(1.0)
                assert drop_fleet.running, "simcam server died: " + drop_fleet._log_tail()
            await _until(
                lambda: any(t > window_end for t in dropped.starts), 5, "reconnect after window"
            )
            await asyncio.sleep(1.0)
            return t_drop, window_end, dropped, steady
        finally:
            await _stop(tasks)

    t_drop, window_end, dropped, steady = asyncio.run(scenario())
    assert drop_fleet.running and drop_fleet.pid == pid
    # the clients did reconnect during the window (OPTIONS, then DESCRIBE 503)
    assert len(dropped.refusals(t_drop, window_end + 0.2)) >= 3, dropped.failures
    assert not [t for t in dropped.starts if t_drop + 0.2 < t < window_end - 0.2]
    # and got the stream back after it
    back = min(t for t in dropped.starts if t > window_end)
    assert back - window_end < 3.0
    assert len(dropped.units_between(back, back + 1.0)) >= 15
    # the other camera kept streaming on its first connection
    assert len(steady.starts) == 1 and not steady.failures, steady.failures
    during = steady.units_between(t_drop, window_end + 1.0)
    assert len(during) >= 0.8 * 25 * (refuse_s + 1.0)
    assert _max_gap(during) < 0.5


def test_three_drops_with_refusal_on_two_cameras_under_reconnect_churn(drop_fleet):
    """Stress: three drops with refusal in a row on cameras 0 and 1 while
    two clients per camera reconnect every 0.3 s; camera 2 keeps streaming."""
    pid = drop_fleet.pid
    refuse_s, period = 1.5, 2.5
    before = {i: drop_fleet.camera_state(i)["drops"] for i in (0, 1)}

    async def scenario():
        churn = [Reconnector(drop_fleet.url(i), hold_s=0.3, retry_s=0.3) for i in (0, 0, 1, 1)]
        steady = Reconnector(drop_fleet.url(2))
        tasks = [asyncio.create_task(c.run()) for c in (*churn, steady)]
        try:
            await _until(
                lambda: all(c.units for c in churn) and len(steady.units) >= 10, 15, "streams"
            )
            t_first = time.monotonic()
            for _ in range(3):
                t_round = time.monotonic()
                states = await asyncio.gather(
                    *(
                        asyncio.to_thread(drop_fleet.inject, i, "drop", refuse_s=refuse_s)
                        for i in (0, 1)
                    )
                )
                assert all(s["refusing"] for s in states)
                await asyncio.sleep(max(0.0, t_round + period - time.monotonic()))
                assert drop_fleet.running, "simcam server died: " + drop_fleet._log_tail()
            window_end = t_round + refuse_s + 0.1
            await _until(
                lambda: all(any(t > window_end for t in c.starts) for c in churn),
                6,
                "every client back after the last window",
            )
            return t_first, churn, steady
        finally:
            await _stop(tasks)

    t_first, churn, steady = asyncio.run(scenario())
    assert drop_fleet.running and drop_fleet.pid == pid
    assert sum(len(c.refusals(t_first, time.monotonic())) for c in churn) >= 6
    for i in (0, 1):
        assert drop_fleet.camera_state(i)["drops"] == before[i] + 3
    assert len(steady.starts) == 1 and not steady.failures, steady.failures
    assert _max_gap(steady.units_between(t_first, time.monotonic())) < 0.5
