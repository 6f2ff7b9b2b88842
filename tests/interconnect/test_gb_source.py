"""A GB/T 28181 channel recorded like an RTSP camera (Q13.2; Q12.1, N12.1): the upper VIIS's
own recorder records the camera its catalog sync made (``gb28181://<device>/<channel>``)
from a lower VIIS on loopback — segments in the index whose pictures carry the simulator's
time code — and a gb28181:// camera without the platform role, or of a device that never
registered, is a gap with a cause, not a crash."""

from __future__ import annotations

import asyncio

import av
from sqlalchemy import select

from tests.interconnect.cascade_helpers import LOCAL, add_upper, share
from tests.interconnect.gb_helpers import SERVER, started, until
from tests.interconnect.gb_helpers import make_app as make_upper_app
from tests.media.recording import add_camera, rows
from tests.media.recording import make_app as make_lower_app
from viis.core.clock import SystemClock
from viis.interconnect.gb28181.cascade import Cascade
from viis.interconnect.gb28181.serve import MediaAnswerer
from viis.media import gb_source, rtsp
from viis.media.recorder import Recorder
from viis.registry.models import Camera
from viis.simcam import SimFleet
from viis.simcam.timecode import decode_timecode

CH = "34020000001310000101"


def test_the_upper_records_a_channel_of_the_lower_through_its_platform_role(tmp_path,
                                                                             sqlite_db):
    fleet = SimFleet(1, width=320, height=180, fps=10, gop_s=1.0, cycle_s=70)
    fleet.start()
    lower = make_lower_app(tmp_path / "lower")
    upper = make_upper_app(tmp_path / "upper", sqlite_db, SystemClock(), keepalive_s=5,
                           password="pw")
    upper.settings.storage.segment_seconds = 4
    upper.settings.storage.min_free_bytes = 1024
    gate = add_camera(lower, "东门入口", fleet.url(0), security_level=1)
    out: dict = {}

    async def main():
        svc = await started(upper)
        u = add_upper(lower, svc.port, server_id=SERVER, password="pw", level=1, keepalive_s=1,
                      register_expires=3600)
        share(lower, u, [{"camera_id": gate, "channel_id": CH}])
        low_rec = Recorder(lower)
        await low_rec.start()
        cascade = Cascade(lower, host="127.0.0.1", port=0, t1=0.1)
        answerer = MediaAnswerer.attach(cascade, low_rec)
        await cascade.start()
        up_rec = Recorder(upper, gb=svc)
        try:
            def upper_camera():
                with sqlite_db.session() as s:
                    return s.scalar(select(Camera.id).where(
                        Camera.main_url == f"gb28181://{LOCAL}/{CH}"))
            assert await until(lambda: upper_camera() is not None, 30), svc.diagnose(LOCAL)
            assert await until(lambda: low_rec.status(gate)["state"] == "recording", 30)
            await up_rec.start()
            cid = upper_camera()
            out["cid"] = cid
            assert await until(lambda: len(rows(upper, cid)[0]) >= 2, 60), up_rec.status(cid)
            out["status"] = up_rec.status(cid)
            out["served"] = len(answerer.sessions)
            # the same channel over TCP (we listen, the device connects: a=setup:passive)
            units = []
            sess = gb_source.GbSession(f"gb28181://{LOCAL}/{CH}", svc, transport="tcp",
                                       on_unit=units.append)
            await sess.start()
            await until(lambda: len(units) >= 10, 20)
            modes = sorted(x["mode"] for x in answerer.status())
            await sess.close()
            out["tcp"] = (sess.streams[0].media.codec, "sps" in sess.streams[0].parameter_sets,
                          units[0].key if units else None, len(units) >= 10, modes)
        finally:
            await up_rec.stop()
            await answerer.close()
            await cascade.stop()
            await low_rec.stop()
            await svc.stop()

    try:
        asyncio.run(asyncio.wait_for(main(), 180))
    finally:
        fleet.stop()
        lower.close()
    segs, _gaps = rows(upper, out["cid"])
    assert out["served"] == 1  # one INVITE, one upward session for the recorder
    assert out["tcp"] == ("h264", True, True, True, ["tcp-active", "udp"]), out["tcp"]
    seg = segs[0]
    assert (seg.video_codec, seg.width, seg.height) == ("h264", 320, 180)
    codes = []
    with av.open(str(upper.settings.segments_path / seg.path)) as c:
        for fr in c.decode(video=0):
            code = decode_timecode(fr.to_ndarray(format="gray"))
            if code is not None:
                codes.append(code)
    assert len(codes) >= 20, codes  # a 4 s segment at 10 fps, pictures that decode
    assert 1500 <= (codes[-1] - codes[0]) % 70_000 <= 6000, (codes[0], codes[-1])


def test_gb_urls_without_the_platform_role_or_an_unknown_device_fail_with_a_cause(tmp_path,
                                                                                 sqlite_db):
    app = make_upper_app(tmp_path, sqlite_db, SystemClock())
    url = "gb28181://34020000001180000001/34020000001310000001"

    async def cause(gb) -> str:
        s = gb_source.open_session(url, gb=gb)
        assert isinstance(s, gb_source.GbSession)
        try:
            await s.start()
        except rtsp.RtspConnectError as e:  # the recorder's gap cause 'unreachable'
            return str(e)
        return ""

    async def run():
        assert "enable [gb28181]" in await cause(None)
        svc = await started(app)  # a real platform role where that device never registered
        try:
            assert "never registered" in await cause(svc)
        finally:
            await svc.stop()
        assert isinstance(gb_source.open_session("rtsp://127.0.0.1:9/x"), rtsp.RtspSession)
    asyncio.run(run())
