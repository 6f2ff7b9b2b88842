"""Media producers for GB/T 28181 answering (Q13.1): live from the recorder's packet tap,
playback from real recorded segments paced on a manual clock with pause, seek and scale."""

from __future__ import annotations

import asyncio
import collections

import pytest

from tests.interconnect.gbmedia import MINUTE_MS, decode_codes, record_hour, synthetic_minute
from tests.interconnect.ps_media import FRAME_90K, clip, needs_ffmpeg
from viis.interconnect.gb28181.clock import ManualClock
from viis.interconnect.gb28181.feeds import LiveTap, PlaybackFeed, RecordingReader
from viis.interconnect.gb28181.ps import PsDemuxer, PsMuxer
from viis.media.h26x import is_keyframe
from viis.media.index import SegmentRecord, append_segment
from viis.media.mp4_format import Track
from viis.media.mp4_writer import SegmentWriter
from viis.media.rtp import AccessUnit
from viis.registry.models import Camera

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


def test_a_new_live_feed_starts_at_once_with_the_cameras_current_gop_within_budget():
    async def run():
        tap = LiveTap(gop_bytes=1000, budget_bytes=10_000)
        for i in range(13):  # GOPs of 10: the current one holds frames 10, 11, 12
            tap(1, "h264", 90000, _unit(i * 3600, i % 10 == 0), [b"\x67"] if i % 10 == 0 else [])
        feed = tap.open(1)
        got = [await asyncio.wait_for(feed.next(), 1) for _ in range(3)]
        assert [f.pts90k for f in got] == [36000, 39600, 43200] and got[0].key
        assert got[0].params == [b"\x67"] and tap.cached == 300 and feed.backlog == 3
        tap(1, "h264", 90000, _unit(13 * 3600, False), [])
        assert (await asyncio.wait_for(feed.next(), 1)).pts90k == 13 * 3600
        for i in range(14, 30):  # over the per-camera cap: the cache lets go until a keyframe
            tap(1, "h264", 90000, _unit(i * 3600, i % 20 == 0), [])
        assert tap.gops.get(1) == [] or tap.cached <= 1000
        tap(1, "h264", 90000, None, [])  # the session ended: nothing stale is kept
        assert tap.cached == 0 and 1 not in tap.gops
        assert tap.open(2).queue == collections.deque()  # a camera never seen: wait for a key
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


@needs_ffmpeg
def test_playback_of_h265_footage_carries_vps_sps_pps_and_survives_ps(footage, store):
    """An H.265 camera's recording (hvcC parameter sets) played back upward: keyframes carry
    VPS, SPS and PPS, and the frames round-trip through PS unchanged (Q13.1)."""
    aus, _mp4 = clip("h265", "320x180", 2.0, gop=25)
    first = aus[0]
    track = Track.video("h265", first, track_id=1)
    cam = footage.camera("gbh265")
    rel = f"{cam.uid}/h265/{T0}.mp4"
    path = store / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    w = SegmentWriter(str(path), [track], fragment_duration=1.0, creation_time=0)
    for i, au in enumerate(aus):
        w.write_sample(1, i * FRAME_90K, au, is_keyframe("h265", au))
    info = w.close({1: len(aus) * FRAME_90K})
    with footage.db.session() as s:
        append_segment(s, s.get(Camera, cam.id), SegmentRecord(
            T0, T0 + info.duration_ms, info.frames, info.size, info.sha256, rel, "h265", 320,
            180, 25.0), T0)
    frames = list(RecordingReader.of_camera(footage.db, store, cam.id).frames(T0, T0 + 2_000))
    assert len(frames) == len(aus) and frames[0].key and frames[0].codec == "h265"
    assert sorted((p[0] >> 1) & 0x3F for p in frames[0].params) == [32, 33, 34]  # VPS SPS PPS
    mux, demux = PsMuxer("h265"), PsDemuxer()
    out = []
    for f in frames:
        out += demux.feed(mux.mux(f.nals, f.pts90k, f.key, f.params))
    out += demux.flush()
    assert len(out) == len(frames) and out[0].codec == "h265" and demux.errors == 0
    assert [o.pts90k for o in out] == [f.pts90k for f in frames]
    assert out[5].nals == frames[5].nals
