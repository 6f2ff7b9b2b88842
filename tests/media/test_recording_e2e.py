"""Three simulated cameras recorded for three minutes with injected faults (storage spine,
"done when"): every segment plays, durations add up to wall time, the only gaps are the
injected ones with their causes, the chain verifies, and the read side returns exports,
snapshots and timelines that match the pixels' own time codes (Q2.1, Q19.7, Q20.3, N23.1).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import av
import pytest
from fastapi.testclient import TestClient

from tests.media.recording import add_camera, make_app, rows
from viis.integrity.verify import Verifier
from viis.media import playback
from viis.media.recorder import Recorder
from viis.simcam.fleet import SimFleet
from viis.simcam.timecode import decode_timecode, resolve_capture_ms

MINUTES = 3
GOP_MS = 1000
FPS = 25


def first_and_last_capture(path: Path, approx_ms: int, cycle_ms: int) -> tuple[int, int, int]:
    """Capture times (from the time code in the pixels) of the first and last frame, and the
    number of frames."""
    times = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            code = decode_timecode(f.to_ndarray(format="gray"))
            times.append(None if code is None else resolve_capture_ms(code, approx_ms, cycle_ms))
    good = [t for t in times if t is not None]
    assert len(good) >= len(times) * 0.9, "time codes must be readable from recorded frames"
    return good[0], good[-1], len(times)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Record 3 cameras for 3 minutes: cam0 is dropped (and refused for 5 s), cam1 stalls for
    12 s, cam2 runs untouched."""
    tmp = tmp_path_factory.mktemp("rec")
    fleet = SimFleet(3, width=320, height=180, fps=FPS, gop_s=GOP_MS / 1000, bitrate=300_000,
                     cache_dir=tmp / "clips")
    fleet.start()
    app = make_app(tmp, VIIS_STORAGE__SEGMENT_SECONDS="20", VIIS_RECORDER__STALL_TIMEOUT_S="4")
    ids = [add_camera(app, f"cam{i}", fleet.url(i)) for i in range(3)]
    injected = {}

    async def scenario():
        rec = Recorder(app)
        await rec.start()
        t0 = app.clock.wall_ms()
        try:
            await asyncio.sleep(50)
            injected["drop"] = app.clock.wall_ms()
            await asyncio.to_thread(fleet.inject, 0, "drop", refuse_s=5)
            await asyncio.sleep(40)
            injected["stall"] = app.clock.wall_ms()
            await asyncio.to_thread(fleet.inject, 1, "stall", duration_s=12)
            await asyncio.sleep(MINUTES * 60 - 90)
        finally:
            await rec.stop()
            injected["stop"] = app.clock.wall_ms()
        injected["start"] = t0

    try:
        asyncio.run(scenario())
    finally:
        fleet.stop()
    yield app, ids, injected, fleet.cycle_ms
    app.close()


def test_every_segment_plays_and_matches_its_index_row(recording):
    app, ids, _inj, _cycle = recording
    root = app.settings.segments_path
    for cid in ids:
        segs, _ = rows(app, cid)
        assert len(segs) >= MINUTES * 60 // 20 - 1
        for seg in segs:
            out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams",
                                  "-of", "json", str(root / seg.path)], capture_output=True, text=True)
            assert out.returncode == 0, out.stderr
            v = json.loads(out.stdout)["streams"][0]
            assert v["codec_name"] == "h264" and int(v["nb_read_frames"]) == seg.frames
            err = subprocess.run(["ffmpeg", "-v", "error", "-i", str(root / seg.path), "-f", "null", "-"],
                                 capture_output=True, text=True).stderr
            assert err == "", f"{seg.path}: {err}"


def test_the_only_gaps_are_the_injected_ones_each_with_its_cause(recording):
    app, ids, inj, _cycle = recording
    causes = [[g.cause for g in rows(app, cid)[1]] for cid in ids]
    assert len(causes[0]) == 1 and causes[0][0] in ("unreachable", "stream_error")
    assert causes[1] == ["stalled"]
    assert causes[2] == []
    drop_gap = rows(app, ids[0])[1][0]
    assert inj["drop"] - 2000 <= drop_gap.start_ms <= inj["drop"] + 1000
    assert 5000 <= drop_gap.end_ms - drop_gap.start_ms <= 12000
    stall_gap = rows(app, ids[1])[1][0]
    assert inj["stall"] - 2000 <= stall_gap.start_ms <= inj["stall"] + 1000
    assert 8000 <= stall_gap.end_ms - stall_gap.start_ms <= 20000


def test_segments_and_gaps_tile_the_recording_and_durations_add_up_to_wall_time(recording):
    app, ids, inj, cycle = recording
    root = app.settings.segments_path
    for cid in ids:
        segs, gaps = rows(app, cid)
        links = sorted([(s.start_ms, s.end_ms) for s in segs] + [(g.start_ms, g.end_ms) for g in gaps])
        for (_, a_end), (b_start, _) in zip(links, links[1:], strict=False):
            assert b_start == a_end, "segments and gaps follow each other without holes"
        # Wall time from the pixels: the time codes the camera painted into its first and
        # last recorded frames against the index's own timeline of the same frames.
        runs, cur = [], [segs[0]]
        for s in segs[1:]:
            if s.start_ms == cur[-1].end_ms:
                cur.append(s)
            else:
                runs.append(cur)
                cur = [s]
        runs.append(cur)
        for run in runs:
            first, _, _ = first_and_last_capture(root / run[0].path, run[0].start_ms, cycle)
            _, last, _ = first_and_last_capture(root / run[-1].path, run[-1].end_ms, cycle)
            media_ms = sum(s.duration_ms for s in run) - 1000 / FPS  # last frame's start
            pixel_ms = last - first
            tolerance = (pixel_ms / 3_600_000) * 1000 + 1000 / FPS  # 1 s per hour + a frame
            assert abs(media_ms - pixel_ms) <= tolerance, (cid, media_ms, pixel_ms)
            assert abs(run[0].start_ms - first) < 1000, "segment start is the capture time"


def test_the_recording_verifies_deep(recording):
    app, ids, _inj, _cycle = recording
    with app.db.session() as s:
        rep = Verifier(s, app.settings.segments_path, deep=True).run()
    assert rep.ok, [p.message for p in rep.problems]
    assert rep.files_checked == sum(len(rows(app, c)[0]) for c in ids)


def test_an_export_across_a_segment_boundary_starts_within_a_gop_and_lasts_right(recording, tmp_path):
    app, ids, _inj, cycle = recording
    segs, _ = rows(app, ids[2])
    boundary = segs[2].start_ms
    frm, to = boundary - 7_300, boundary + 5_100
    with app.db.session() as s:
        ex = playback.export(s, app.settings.segments_path, tmp_path, ids[2], frm, to)
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-of", "json",
         str(ex.path)], capture_output=True, text=True, check=True).stdout)
    v = probe["streams"][0]
    first, last, n = first_and_last_capture(ex.path, frm, cycle)
    assert int(v["nb_read_frames"]) == n
    assert frm - GOP_MS - 100 <= first <= frm + 100, "starts at the keyframe at or before the start"
    duration_ms = float(probe["format"]["duration"]) * 1000
    assert abs(duration_ms - (to - frm)) <= GOP_MS + 100
    assert to - 2 * 1000 / FPS - 100 <= last < to + 100
    err = subprocess.run(["ffmpeg", "-v", "error", "-i", str(ex.path), "-f", "null", "-"],
                         capture_output=True, text=True).stderr
    assert err == ""


def test_the_api_serves_timeline_export_with_ranges_and_snapshot(recording):
    from viis.access.policy import Scope, ScopeRange
    from viis.web.app import create_app

    app, ids, inj, cycle = recording
    api = create_app(app)
    cid = ids[1]
    # A trained operator on duty, inside an approved request's scope for this camera (the
    # bootstrap admin token administers but touches no footage; Q19.2, Q24.1).
    ident = api.state.identity
    with app.db.session() as s:
        org = ident.add_organisation(s, "unit", "using_unit")
        u = ident.add_user(s, login="op", display_name="Op", organisation_id=org.id, work_id="W1",
                           password="correct-horse-42", roles={"operator_on_duty"}, clearance=5)
        for topic in ("skills", "confidentiality"):
            ident.add_training(s, u.id, topic=topic, course="c", completed_ms=0,
                               valid_until_ms=2**62, recorded_by="t")
    api.state.footage_scope = lambda _r, _p: Scope(
        "REQ-1", (ScopeRange(cid, 0, 2**62),),
        frozenset({"export", "snapshot", "playback", "timeline"}), 2**62)
    c = TestClient(api)
    token = c.post("/api/session", json={"login": "op", "password": "correct-horse-42"}).json()["token"]
    c.cookies.clear()
    h = {"Authorization": f"Bearer {token}"}
    segs, gaps = rows(app, cid)
    tl = c.get(f"/api/cameras/{cid}/timeline", params={"start": inj["start"], "end": inj["stop"]},
               headers=h).json()
    assert [g["cause"] for g in tl["gaps"]] == ["stalled"]
    assert len(tl["ranges"]) == 2
    frm, to = segs[1].start_ms + 1000, segs[1].start_ms + 9000
    assert c.get(f"/api/cameras/{cid}/export.mp4", params={"start": frm, "end": to}).status_code == 401
    full = c.get(f"/api/cameras/{cid}/export.mp4", params={"start": frm, "end": to}, headers=h)
    assert full.status_code == 200 and full.headers["accept-ranges"] == "bytes"
    part = c.get(f"/api/cameras/{cid}/export.mp4", params={"start": frm, "end": to},
                 headers={**h, "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == full.content[100:200]
    at = segs[1].start_ms + 4321
    jpg = c.get(f"/api/cameras/{cid}/snapshot.jpg", params={"at": at}, headers=h)
    assert jpg.status_code == 200 and jpg.content[:2] == b"\xff\xd8"
    import io

    frame = next(av.open(io.BytesIO(jpg.content)).decode(video=0))
    code = decode_timecode(frame.to_ndarray(format="gray"))
    assert code is not None
    assert abs(resolve_capture_ms(code, at, cycle) - at) <= 1000 / FPS + 100
    gone = c.get(f"/api/cameras/{cid}/snapshot.jpg", params={"at": inj["start"] - 3_600_000}, headers=h)
    assert gone.status_code == 404
    mse = c.get(f"/api/cameras/{cid}/fmp4", params={"start": frm, "end": to}, headers=h)
    assert mse.status_code == 200 and mse.content[4:8] == b"ftyp"
