"""The recorder against a real GStreamer RTSP server: stream copy into segments that play,
every interruption a gap with its cause, secrets out of logs (Q2.1, Q19.7, Q20.3; invariants
1, 2, 7)."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from tests.media import rtsp_server
from tests.media.recording import add_camera, make_app, record_for, rows
from viis.integrity.verify import Verifier


@pytest.fixture(scope="module")
def server():
    with rtsp_server.GstRtspServer() as srv:
        yield srv


def ffprobe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def decode_errors(path) -> str:
    r = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                       capture_output=True, text=True)
    return r.stderr


def test_h264_h265_and_audio_are_recorded_by_stream_copy_into_segments_that_play(server, tmp_path):
    app = make_app(tmp_path)
    cams = {m: add_camera(app, m.strip("/"), server.url(m)) for m in ("/h264", "/h265", "/h264aac", "/h264pcma")}
    asyncio.run(record_for(app, 11))
    root = app.settings.segments_path
    for mount, cid in cams.items():
        segs, gaps = rows(app, cid)
        assert len(segs) >= 2, mount
        assert gaps == []
        for a, b in zip(segs, segs[1:], strict=False):
            assert b.start_ms == a.end_ms, "segments of one session are contiguous"
        for seg in segs:
            info = ffprobe(root / seg.path)
            kinds = {s["codec_type"]: s for s in info["streams"]}
            v = kinds["video"]
            assert v["codec_name"] == {"/h265": "hevc"}.get(mount, "h264")
            assert (v["width"], v["height"]) == (320, 240) == (seg.width, seg.height)
            assert int(v["nb_read_frames"]) == seg.frames
            assert abs(float(v["duration"]) * 1000 - seg.duration_ms) <= 40
            assert decode_errors(root / seg.path) == ""
            if mount == "/h264aac":
                assert kinds["audio"]["codec_name"] == "aac" and seg.audio_codec == "aac"
            if mount == "/h264pcma":
                assert kinds["audio"]["codec_name"] == "pcm_alaw" and seg.audio_codec == "pcma"
            assert (root / seg.path).stat().st_mode & 0o777 == 0o444
        assert segs[0].browser_playable == (mount != "/h265")
    with app.db.session() as s:
        rep = Verifier(s, root, deep=True).run()
    assert rep.ok, rep.problems


def test_a_stalled_stream_is_cut_and_recorded_as_stalled(tmp_path):
    with rtsp_server.GstRtspServer() as srv:
        app = make_app(tmp_path, VIIS_RECORDER__STALL_TIMEOUT_S="2")
        cid = add_camera(app, "cam", srv.url("/h264"))

        async def stall(rec):
            await asyncio.sleep(5)
            srv.pause()
            await asyncio.sleep(4)
            srv.resume()
            await asyncio.sleep(6)

        asyncio.run(record_for(app, 0, during=stall))
    segs, gaps = rows(app, cid)
    assert "stalled" in [g.cause for g in gaps]
    with app.db.session() as s:
        assert Verifier(s, app.settings.segments_path).run().ok


def test_credentials_never_reach_logs_or_status(tmp_path, capsys):
    with rtsp_server.GstRtspServer(auth=True) as srv:
        app = make_app(tmp_path)
        bad = add_camera(app, "bad", srv.url("/h264"), username=rtsp_server.SECURE_USER,
                         password="wrong-" + rtsp_server.SECURE_PASSWORD)
        good = add_camera(app, "good", srv.url("/h264"), username=rtsp_server.SECURE_USER,
                          password=rtsp_server.SECURE_PASSWORD)
        from viis.core.logging import configure
        configure("DEBUG", True)
        rec = asyncio.run(record_for(app, 7))
        status = json.dumps([rec.status(bad), rec.status(good)])
    err = capsys.readouterr().err
    assert rtsp_server.SECURE_PASSWORD not in err and rtsp_server.SECURE_PASSWORD not in status
    assert "authentication failed" in err or "authentication" in status
    assert rows(app, good)[0], "the camera with the right password records"
    assert rows(app, bad)[0] == []


def test_keyframe_taps_get_decodable_keyframes_from_the_one_camera_session(server, tmp_path):
    import av

    app = make_app(tmp_path)
    cid = add_camera(app, "cam", server.url("/h264"))
    got = []

    async def run(rec):
        rec.add_keyframe_tap(lambda cam, t, codec, nals: got.append((cam, t, codec, nals)))
        await asyncio.sleep(4)

    asyncio.run(record_for(app, 0, during=run))
    assert len(got) >= 3 and {g[0] for g in got} == {cid} and {g[2] for g in got} == {"h264"}
    assert all(900 <= b[1] - a[1] <= 1100 for a, b in zip(got, got[1:]))  # one keyframe a second
    codec = av.CodecContext.create("h264", "r")
    data = b"".join(b"\0\0\0\1" + n for n in got[-1][3])
    frames = [f for p in codec.parse(data) + codec.parse(b"") for f in codec.decode(p)]
    frames += list(codec.decode(None))
    assert frames and (frames[0].width, frames[0].height) == (320, 240)


@pytest.mark.postgres
def test_recording_on_postgresql_indexes_and_verifies(server, tmp_path, pg_url):
    app = make_app(tmp_path, db_url=pg_url)
    cid = add_camera(app, "cam", server.url("/h264aac"))
    asyncio.run(record_for(app, 9))
    segs, gaps = rows(app, cid)
    assert len(segs) >= 2 and gaps == []
    assert [s.seq for s in segs] == list(range(1, len(segs) + 1))
    with app.db.session() as s:
        rep = Verifier(s, app.settings.segments_path, deep=True).run()
    assert rep.ok, rep.problems
    app.close()


def test_disabling_and_reenabling_a_camera_records_a_disabled_gap(server, tmp_path):
    app = make_app(tmp_path)
    cid = add_camera(app, "cam", server.url("/h264"))

    async def toggle(rec):
        await asyncio.sleep(5)
        with app.db.session() as s:
            app.cameras.update(s, cid, {"enabled": False})
        await rec.sync_cameras()
        await asyncio.sleep(3)
        with app.db.session() as s:
            app.cameras.update(s, cid, {"enabled": True, "priority": 70})
        await rec.sync_cameras()
        assert rec.cameras[cid].priority == 70
        await asyncio.sleep(5)

    asyncio.run(record_for(app, 0, during=toggle))
    segs, gaps = rows(app, cid)
    assert [g.cause for g in gaps] == ["disabled"]
    assert 2500 <= gaps[0].end_ms - gaps[0].start_ms <= 6000
    with app.db.session() as s:
        assert Verifier(s, app.settings.segments_path).run().ok
