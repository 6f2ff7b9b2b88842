"""Playback from a device's own storage (issue 7 item 3; Q13.2), through the REST route and
the one door (invariant 3; Q19.1, Q13.1): a lower VIIS is the device — it registers to our
platform role with a password and keeps a recorded hour — and an operator asks
``GET /api/gb28181/devices/{d}/channels/{c}/playback`` for 4 s of it. VIIS INVITEs
``s=Playback``, the device streams PS over RTP, the answer is an MPEG program stream that
ffprobe decodes (h264 320x180) with the recording's own time codes, it ends at the device's
end of file, and the playback is a register entry of the operator; a user without the
clearance gets 404 and nothing is sent to the device."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time

import av
import pytest
from sqlalchemy import select

from tests.access.helpers import Site
from tests.interconnect.cascade_helpers import LOCAL, add_upper, share
from tests.interconnect.gb_helpers import SERVER
from tests.interconnect.gbmedia import record_hour
from tests.interconnect.test_devices_web import Running, _as, _wait
from tests.media.recording import add_camera
from tests.media.recording import make_app as make_lower_app
from viis.access.retrieval_models import RegisterEntry
from viis.core.config import Gb28181Settings
from viis.interconnect.gb28181.cascade import Cascade
from viis.interconnect.gb28181.serve import MediaAnswerer
from viis.media.recorder import Recorder
from viis.registry.models import Camera
from viis.simcam.timecode import decode_timecode

pytestmark = pytest.mark.skipif(not shutil.which("ffprobe"), reason="ffprobe not installed")
CH = "34020000001310000101"


class _Upper(Running):
    def __init__(self, app) -> None:  # as Running, with the lower VIIS's password
        import asyncio
        import threading

        from viis.interconnect.gb28181.service import GbPlatformService

        st = Gb28181Settings(enabled=True, host="127.0.0.1", port=0, password="pw",
                             keepalive_s=5, query_timeout_s=5, catalog_subscribe_s=0)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.svc = GbPlatformService(app, st, flush_interval=0.1)
        asyncio.run_coroutine_threadsafe(self.svc.start(), self.loop).result(30)


def _ffprobe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-f", "mpeg", "-count_frames",
                          "-show_entries", "stream=codec_name,width,height,nb_read_frames",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["streams"][0]


def test_an_operator_plays_back_a_range_from_the_devices_own_storage(tmp_path, db, clock):
    site = Site(tmp_path / "upper", db, clock)
    up = _Upper(site.app)
    site.api.state.gb28181 = up.svc
    lower = make_lower_app(tmp_path / "lower")
    gate = add_camera(lower, "东门入口", "rtsp://127.0.0.1:9/none", security_level=2)
    hour0 = (int(time.time() * 1000) // 3_600_000 - 3) * 3_600_000
    record_hour(lower.db, lower.settings.segments_path, gate, hour0, minutes=2)
    u = add_upper(lower, up.svc.port, server_id=SERVER, password="pw", level=2, keepalive_s=1,
                  register_expires=3600)
    share(lower, u, [{"camera_id": gate, "channel_id": CH}])
    rec = Recorder(lower)  # not started: the device side serves only its recordings
    cascade = Cascade(lower, host="127.0.0.1", port=0, t1=0.1)
    answerer = MediaAnswerer.attach(cascade, rec)
    up.run(cascade.start())
    try:
        def camera():
            with site.app.db.session() as s:
                return s.scalar(select(Camera).where(Camera.main_url == f"gb28181://{LOCAL}/{CH}"))
        assert _wait(lambda: camera() is not None, 30), up.svc.diagnose(LOCAL)
        with site.app.db.session() as s:  # the site grades the channel like the lower does
            s.get(Camera, camera().id).security_level = 2
        cam_id = camera().id

        url = f"/api/gb28181/devices/{LOCAL}/channels/{CH}/playback"
        start, end = hour0 + 30_000, hour0 + 34_000  # 0:30 to 0:34 of the recorded hour
        low = _as(site, "low1", ("operator_on_duty",), clearance=1)
        r = low.get(url, params={"start": str(start), "end": str(end)})
        assert r.status_code == 404, r.text  # above the user's clearance: nothing sent
        assert not answerer.sessions

        op = _as(site, "oper1", ("operator_on_duty",), clearance=2)
        t0 = time.monotonic()
        r = op.get(url, params={"start": str(start), "end": str(end)})
        took = time.monotonic() - t0
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "video/MP2P"
        ps = tmp_path / "device_playback.ps"
        ps.write_bytes(r.content)
        probe = _ffprobe(ps)
        assert probe["codec_name"] == "h264" and (probe["width"], probe["height"]) == (320, 180)
        assert int(probe["nb_read_frames"]) >= 15, probe  # ~4 s at 5 fps, all decodable
        codes = []
        with av.open(str(ps), format="mpeg") as c:
            for fr in c.decode(video=0):
                code = decode_timecode(fr.to_ndarray(format="gray"))
                if code is not None:
                    codes.append(code)
        # the recording's time code is its time within the minute: 30 s (from the keyframe
        # at or before the start) to 34 s
        assert codes and 28_000 <= codes[0] <= 30_200 and 32_000 <= codes[-1] <= 34_200, codes
        assert took < 30, took  # ended by the device's end of file, not by the idle timeout
        assert _wait(lambda: not answerer.sessions, 10)  # BYE reached the device

        # the same over TCP: we listen, the device connects (a=setup:passive in our offer)
        modes: set[str] = set()
        done = threading.Event()

        def watch() -> None:  # what the device side sends with, while the request runs
            while not done.wait(0.02):
                try:
                    modes.update(x["mode"] for x in answerer.status())
                except RuntimeError:  # the session table changed while read: next round
                    pass

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            r = op.get(url, params={"start": str(start), "end": str(start + 2_000),
                                    "transport": "tcp"})
        finally:
            done.set()
            watcher.join(5)
        assert r.status_code == 200, r.text
        ps.write_bytes(r.content)
        assert int(_ffprobe(ps)["nb_read_frames"]) >= 5
        assert modes == {"tcp-active"}, modes  # the device connected to us
        assert op.get(url, params={"start": str(start), "end": str(end),
                                   "transport": "sctp"}).status_code == 422

        with site.app.db.session() as s:
            entries = [(e.action, e.camera_id, e.outcome, e.user_login) for e in
                       s.scalars(select(RegisterEntry).order_by(RegisterEntry.id))]
        assert ("playback", cam_id, "allowed", "oper1") in entries, entries
        assert not any(e[3] == "low1" for e in entries), entries  # 404 before the door
    finally:
        up.run(answerer.close())
        up.run(cascade.stop())
        up.stop()
        lower.close()
