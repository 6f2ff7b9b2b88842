"""Media producers for GB/T 28181 answering (Q13.1): live from the recorder's packet tap,
playback from real recorded segments paced on a manual clock with pause, seek and scale."""

from __future__ import annotations

import asyncio

import pytest

from tests.interconnect.gbmedia import MINUTE_MS, decode_codes, record_hour, synthetic_minute
from viis.interconnect.gb28181.clock import ManualClock
from viis.interconnect.gb28181.feeds import LiveTap, PlaybackFeed, RecordingReader
from viis.media.rtp import AccessUnit

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z, a whole minute


def _unit(ts: int, key: bool, size: int = 100) -> AccessUnit:
    return AccessUnit(0, ts, [bytes([0x65 if key else 0x41]) + b"\0" * (size - 1)], key,
                      T0 + ts // 90, 0.0)


@pytest.fixture(scope="module")
def minute():
    return synthetic_minute()


# -------------------------------------------------------------------------------- live
def test_live_feed_starts_at_a_keyframe_with_parameter_sets():
    async def run():
        tap = LiveTap()
        feed = tap.open(7)
        tap(7, "h264", 90000, _unit(0, False), [])
        tap(8, "h264", 90000, _unit(0, True), [b"\x67sps"])  # another camera
        tap(7, "h264", 90000, _unit(3600, True), [b"\x67sps", b"\x68pps"])
        tap(7, "h264", 90000, _unit(7200, False), [])
        f1, f2 = await feed.next(), await feed.next()
        assert f1.key and f1.pts90k == 3600 and f1.params == [b"\x67sps", b"\x68pps"]
        assert not f2.key and f2.params == [] and f2.pts90k == 7200
        feed.close()
        assert await feed.next() is None and tap.viewers(7) == 0
    asyncio.run(run())


def test_live_slow_consumer_drops_to_the_next_keyframe():
    async def run():
        tap = LiveTap()
        slow, fast = tap.open(1, max_frames=5), tap.open(1, max_frames=1000)
        for i in range(31):  # GOP of 10, nobody reads slow
            tap(1, "h264", 90000, _unit(i * 3600, i % 10 == 0), [b"\x67"] if i % 10 == 0 else [])
        assert slow.drops >= 1
        assert len(slow.queue) == 1
        first = await asyncio.wait_for(slow.next(), 5)
        assert first.key and first.pts90k == 30 * 3600, "after a drop: the next keyframe"
        assert fast.drops == 0 and len(fast.queue) == 31  # others are not held back
    asyncio.run(run())


def test_live_feed_waits_for_a_keyframe_after_the_camera_session_ends():
    async def run():
        tap = LiveTap()
        feed = tap.open(1)
        tap(1, "h264", 90000, _unit(0, True), [])
        tap(1, "h264", 90000, None, [])
        tap(1, "h264", 90000, _unit(3600, False), [])
        tap(1, "h264", 90000, _unit(7200, True), [])
        got = [await feed.next(), await feed.next()]
        assert [f.pts90k for f in got] == [0, 7200] and feed.lost == 1
    asyncio.run(run())


# ---------------------------------------------------------------------------- playback
@pytest.fixture
def recorded(footage, store, minute):
    cam = footage.camera("gbplay")
    record_hour(footage.db, store, cam.id, T0, minutes=3, frames=minute)
    return RecordingReader.of_camera(footage.db, store, cam.id)


async def _take(feed, clock, n, step=0.05, limit=10_000):
    """Read n frames, advancing the manual clock by ``step`` whenever nothing is due."""
    out = []
    for _ in range(limit):
        if len(out) == n:
            return out
        task = asyncio.ensure_future(feed.next())
        await asyncio.sleep(0)
        for _ in range(100_000):
            if task.done():
                break
            clock.advance(step)
            await asyncio.sleep(0)
        else:
            task.cancel()
            raise AssertionError("no frame came however far the clock moved")
        f = task.result()
        if f is None:
            return out
        out.append((clock.now(), f))
    return out


def test_playback_reads_recorded_segments_paced_in_real_time(recorded):
    async def run():
        clock = ManualClock(start=0.0)
        feed = PlaybackFeed(recorded, T0 + 10_000, T0 + 3 * MINUTE_MS, clock)
        got = await _take(feed, clock, 51)
        first = got[0][1]
        assert first.key and first.params and first.pts90k == 0
        assert first.wall_ms == T0 + 10_000
        # 50 frames at 5 fps = 10 s of recording took 10 s of clock
        assert got[-1][0] - got[0][0] == pytest.approx(10.0, abs=0.06)
        assert got[-1][1].pts90k == 10 * 90000
        codes = decode_codes([f.nals for _t, f in got])
        assert codes[0] == 10_000 and codes[-1] == 20_000  # time code = recording time mod 60 s
    asyncio.run(run())


def test_playback_scale_two_and_seek_across_segments(recorded):
    """2x speed (Q13.1 playback from an upper platform): 10 s of recording in 5 s of clock;
    a seek to npt=90 s continues at the recording's 1:30 from its keyframe."""
    async def run():
        clock = ManualClock(start=0.0)
        feed = PlaybackFeed(recorded, T0, T0 + 3 * MINUTE_MS, clock, scale=2.0)
        got = await _take(feed, clock, 51)
        assert got[-1][0] - got[0][0] == pytest.approx(5.0, abs=0.06)
        feed.seek(90)
        after = await _take(feed, clock, 11)
        assert after[0][1].key and after[0][1].wall_ms == T0 + 90_000
        assert after[0][1].pts90k == 90 * 90000  # one timeline: recording time since start
        codes = decode_codes([f.nals for _t, f in after])
        assert codes[0] == 30_000 and codes[-1] == 32_000  # 1:30 -> 30 s into its minute
        assert after[-1][0] - after[0][0] == pytest.approx(1.0, abs=0.06)
        with pytest.raises(ValueError):
            feed.set_scale(16)
        with pytest.raises(ValueError):
            feed.seek(3 * 60)
    asyncio.run(run())


def test_playback_pause_holds_and_play_resumes_without_rushing(recorded):
    async def run():
        clock = ManualClock(start=0.0)
        feed = PlaybackFeed(recorded, T0, T0 + MINUTE_MS, clock)
        await _take(feed, clock, 5)
        feed.pause()
        task = asyncio.ensure_future(feed.next())
        for _ in range(100):
            clock.advance(0.5)
            await asyncio.sleep(0)
        assert not task.done(), "paused: nothing is sent however long we wait"
        pos = feed.position_ms
        feed.play()
        await asyncio.sleep(0)
        f = await task
        assert f.wall_ms == pos + 200  # the next picture, not a burst from the pause
        rest = await _take(feed, clock, 10)
        assert rest[-1][0] - rest[0][0] == pytest.approx(1.8, abs=0.06)
    asyncio.run(run())


def test_playback_ends_at_the_range_end_and_skips_unrecorded_time(footage, store, minute):
    cam = footage.camera("gbgap")
    record_hour(footage.db, store, cam.id, T0, minutes=1, frames=minute)
    record_hour(footage.db, store, cam.id, T0 + 5 * MINUTE_MS, minutes=1, frames=minute)
    reader = RecordingReader.of_camera(footage.db, store, cam.id)

    async def run():
        clock = ManualClock(start=0.0)
        feed = PlaybackFeed(reader, T0 + 59_000, T0 + 5 * MINUTE_MS + 1_000, clock, scale=8.0)
        got = await _take(feed, clock, 1000, step=1.0)
        times = [f.wall_ms for _t, f in got]
        assert times[0] == T0 + 58_000  # the keyframe before the start
        assert T0 + 5 * MINUTE_MS in times and times[-1] < T0 + 5 * MINUTE_MS + 1_000
        assert feed.ended and await feed.next() is None
    asyncio.run(run())
