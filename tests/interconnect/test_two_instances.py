"""Two VIIS on loopback, media (issue 7 done-when; Q13.1, Q13.2, Q12.1, N12.1, and the
register: Q19.1, Q24.1(3), N16.1).

The lower VIIS records simulated cameras with its real recorder and registers with a
password to the upper VIIS (platform role). The upper's catalog shows exactly the shared
cameras (the one above the share grade is absent). The upper then:
- plays the lower's camera live: the PS stream it receives over UDP, written to a file,
  decodes in ffprobe, and the time code the simulator paints into each picture advances;
- plays back a recorded hour over TCP: a MANSRTSP seek to 30:30 lands on the picture
  recorded then, 2x speed delivers two seconds of recording per second, and a short range
  ends with MediaStatus 121;
- asks a download, which the one door refuses (a copy needs an approved request);
and the lower's register holds each of those views under the upper platform's identity.

The recorded hour is 60 real one-minute segments (libx264, the simulator's time code of
recording time mod 60 s) appended to the camera's index and hash chain before the recorder
starts: see tests/interconnect/gbmedia.py.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import subprocess
import time

import av
import pytest
from sqlalchemy import select

from tests.interconnect.cascade_helpers import LOCAL, add_upper, share
from tests.interconnect.gb_helpers import SERVER, started, until
from tests.interconnect.gb_helpers import make_app as make_upper_app
from tests.interconnect.gbmedia import MINUTE_MS, decode_codes, record_hour
from tests.media.recording import add_camera
from tests.media.recording import make_app as make_lower_app
from viis.access import register
from viis.access.retrieval_models import RegisterEntry
from viis.core.db import Database
from viis.integrity.models import AuditEntry
from viis.interconnect.gb28181 import mansrtsp
from viis.interconnect.gb28181.cascade import Cascade
from viis.interconnect.gb28181.rtpps import PsReceiver
from viis.interconnect.gb28181.sdp import GbSdp, build_sdp
from viis.interconnect.gb28181.serve import MediaAnswerer
from viis.media.recorder import Recorder
from viis.registry.models import Camera
from viis.simcam import SimFleet
from viis.simcam.timecode import decode_timecode

pytestmark = pytest.mark.skipif(not shutil.which("ffprobe"), reason="ffprobe not installed")

CH_GATE, CH_HALL, CH_VAULT = "34020000001310000101", "34020000001310000102", \
    "34020000001310000103"
CYCLE_S = 70


class RawRtp(asyncio.DatagramProtocol):
    """The upper's live receiver at its rawest: RTP payloads (the PS stream) in order."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self.ssrcs: set[int] = set()

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        cc, ext = data[0] & 0x0F, data[0] & 0x10
        p = 12 + 4 * cc
        if ext:
            p += 4 + 4 * struct.unpack_from(">H", data, p + 2)[0]
        self.ssrcs.add(struct.unpack_from(">I", data, 8)[0])
        self.payloads.append(data[p:])


def _offer(session: str, port: int, ssrc: str, *, tcp=False, channel=None, start=0, end=0,
           speed=None) -> str:
    return build_sdp(GbSdp(session=session, origin_id=SERVER, ip="127.0.0.1", port=port,
                           transport="TCP" if tcp else "UDP", setup="passive" if tcp else None,
                           payloads={96: "PS"}, ssrc=ssrc, u=f"{channel}:0" if channel else None,
                           start=start, end=end, download_speed=speed))


async def _info(svc, dialog, body: bytes):
    req = dialog.make_request("INFO", body, "Application/MANSRTSP")
    return await svc.platform.layer.request(req, dialog.peer, dialog.transport)


def _ffprobe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-f", "mpeg", "-count_frames",
                          "-show_entries", "stream=codec_name,width,height,nb_read_frames",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["streams"][0]


def _file_codes(path) -> list[int]:
    codes = []
    with av.open(str(path), format="mpeg") as c:
        for fr in c.decode(video=0):
            code = decode_timecode(fr.to_ndarray(format="gray"))
            if code is not None:
                codes.append(code)
    return codes


def test_upper_viis_plays_live_and_a_recorded_hour_from_the_lower_viis_and_the_lower_registers_it(
        tmp_path, sqlite_db, clock):
    fleet = SimFleet(1, width=320, height=180, fps=10, gop_s=1.0, cycle_s=CYCLE_S)
    fleet.start()
    lower = make_lower_app(tmp_path / "lower", VIIS_STORAGE__SEGMENT_SECONDS="10")
    upper_app = make_upper_app(tmp_path / "upper", sqlite_db, clock, keepalive_s=5,
                               password="city-platform-pw")
    gate = add_camera(lower, "东门入口", fleet.url(0), security_level=1)
    hall = add_camera(lower, "大厅", fleet.url(0), security_level=2)
    vault = add_camera(lower, "机要室", "rtsp://127.0.0.1:9/none", security_level=2)
    hour0 = (int(time.time() * 1000) // 3_600_000 - 3) * 3_600_000
    t_enc = time.monotonic()
    record_hour(lower.db, lower.settings.segments_path, gate, hour0, minutes=60)
    enc_s = time.monotonic() - t_enc
    got: dict = {}

    async def main():
        svc = await started(upper_app)
        u = add_upper(lower, svc.port, server_id=SERVER, password="city-platform-pw", level=2,
                      keepalive_s=1, register_expires=3600)
        share(lower, u, [{"camera_id": gate, "channel_id": CH_GATE},
                         {"camera_id": hall, "channel_id": CH_HALL},
                         {"camera_id": vault, "channel_id": CH_VAULT}])
        with lower.db.session() as s:  # raised above the grade after sharing (Q13.1)
            s.get(Camera, vault).security_level = 3
        rec = Recorder(lower)
        await rec.start()
        cascade = Cascade(lower, host="127.0.0.1", port=0, t1=0.1)
        answerer = MediaAnswerer.attach(cascade, rec)
        await cascade.start()
        loop = asyncio.get_running_loop()
        try:
            assert await until(lambda: cascade.clients[u.id].registered, 30), cascade.diagnose()

            def upper_cameras():
                with sqlite_db.session() as s:
                    return sorted(c.name for c in s.scalars(select(Camera)))
            assert await until(lambda: len(upper_cameras()) >= 2, 30), svc.diagnose(LOCAL)
            await asyncio.sleep(0.5)
            got["catalog"] = upper_cameras()
            assert await until(lambda: rec.status(gate)["state"] == "recording", 30), \
                rec.status(gate)

            # ---- live over UDP: PS to a file, ffprobe, the time code advances
            raw = RawRtp()
            tr, _ = await loop.create_datagram_endpoint(lambda: raw, local_addr=("127.0.0.1", 0))
            port = tr.get_extra_info("sockname")[1]
            d, answer = await svc.invite_device(LOCAL, CH_GATE, _offer("Play", port,
                                                                     "0340200001"))
            got["live_answer"] = answer
            t_inv = loop.time()
            assert await until(lambda: len(raw.payloads) > 0, 20, step=0.01), "no live RTP"
            got["live_first_s"] = loop.time() - t_inv
            await asyncio.sleep(5)
            got["live_status"] = answerer.status()
            await svc.bye(d)
            tr.close()
            assert await until(lambda: not answerer.sessions, 10)
            ps = tmp_path / "live.ps"
            ps.write_bytes(b"".join(raw.payloads))
            got["live_ssrcs"] = raw.ssrcs
            got["live_probe"] = await loop.run_in_executor(None, _ffprobe, ps)
            got["live_codes"] = await loop.run_in_executor(None, _file_codes, ps)

            # ---- the camera above the grade cannot be played at all (404, no entry)
            try:
                await svc.invite_device(LOCAL, CH_VAULT, _offer("Play", 9, "0340200002"))
                got["vault"] = "played"
            except Exception as e:  # noqa: BLE001 - DeviceError with the status
                got["vault"] = str(e)

            # ---- playback of the recorded hour over TCP (the upper listens: setup passive)
            frames: list[tuple[float, object]] = []
            recv = await PsReceiver.open("tcp-passive", lambda f: frames.append(
                (loop.time(), f)), expected_ssrc=1340200003, local_host="127.0.0.1")
            start_s, end_s = hour0 // 1000, (hour0 + 60 * MINUTE_MS) // 1000
            d, answer = await svc.invite_device(
                LOCAL, CH_GATE, _offer("Playback", recv.local_port, "1340200003", tcp=True,
                                       channel=CH_GATE, start=start_s, end=end_s))
            got["playback_answer"] = answer
            assert await until(lambda: len(frames) >= 5, 20), recv.stats
            got["first_codes"] = decode_codes([f.nals for _t, f in frames[:5]])
            r = await _info(svc, d, mansrtsp.build("PLAY", 2, range_start=1830))
            assert r.status == 200, r
            seek_pts = 1830 * 90000  # timestamps are recording time since the hour's start

            def after_seek():  # frames sent before the INFO may still trail in
                return [f for _t, f in frames if f.pts90k >= seek_pts]
            assert await until(lambda: len(after_seek()) >= 12, 20)
            got["seek_pts"] = after_seek()[0].pts90k - seek_pts
            got["seek_codes"] = [c for c in decode_codes([f.nals for f in after_seek()])
                                 if c is not None]
            r = await _info(svc, d, mansrtsp.build("PLAY", 3, scale=2.0))
            assert r.status == 200, r
            await asyncio.sleep(1.0)
            mark = len(frames)
            await asyncio.sleep(4.0)
            window = frames[mark:]
            got["scale2"] = ((window[-1][1].pts90k - window[0][1].pts90k) / 90000,
                             window[-1][0] - window[0][0])
            r = await _info(svc, d, mansrtsp.build("PAUSE", 4))
            assert r.status == 200
            await asyncio.sleep(0.5)
            mark = len(frames)
            await asyncio.sleep(1.5)
            got["paused_frames"] = len(frames) - mark
            await svc.bye(d)
            await recv.close()

            # ---- a short range ends with MediaStatus 121
            ended: list[str] = []
            recv = await PsReceiver.open("udp", lambda f: None, expected_ssrc=1340200004,
                                         local_host="127.0.0.1")
            d, _ = await svc.invite_device(
                LOCAL, CH_GATE, _offer("Playback", recv.local_port, "1340200004",
                                       channel=CH_GATE, start=start_s + 600, end=start_s + 603),
                on_end=lambda _d, why: ended.append(why))
            assert await until(lambda: ended, 20), recv.stats
            got["ended"] = ended
            await svc.bye(d)
            await recv.close()

            # ---- download: a copy; the one door refuses it without an approved request
            try:
                await svc.invite_device(LOCAL, CH_GATE, _offer(
                    "Download", 9, "1340200005", channel=CH_GATE, start=start_s,
                    end=start_s + 60, speed=4))
                got["download"] = "allowed"
            except Exception as e:  # noqa: BLE001
                got["download"] = str(e)
        finally:
            await answerer.close()
            await cascade.stop()
            await svc.stop()
            await rec.stop()

    try:
        asyncio.run(asyncio.wait_for(main(), 240))
    finally:
        fleet.stop()
        lower.close()

    assert got["catalog"] == sorted(["东门入口", "大厅"]), got["catalog"]
    assert "s=Play" in got["live_answer"] and "a=sendonly" in got["live_answer"]
    assert got["live_ssrcs"] == {340200001}  # the SSRC the upper asked for (y=)
    probe = got["live_probe"]
    assert probe["codec_name"] == "h264" and (probe["width"], probe["height"]) == (320, 180)
    assert int(probe["nb_read_frames"]) >= 30, probe  # 5 s at 10 fps, all decodable
    codes = got["live_codes"]
    assert len(codes) >= 30, codes
    advance = (codes[-1] - codes[0]) % (CYCLE_S * 1000)
    assert 3000 <= advance <= 9000, (codes[0], codes[-1])  # the time code runs with the clock
    st = got["live_status"][0]
    assert st["session"] == "Play" and st["mode"] == "udp" and st["sender"]["frames"] >= 30
    # what we add between the recorder's receipt of a picture and the upper's socket
    assert st["latency_ms_p95"] < 1000, st
    print(f"live upward: p50 {st['latency_ms_p50']} ms, p95 {st['latency_ms_p95']} ms "
          f"from the recorder's receipt to the socket; first packet "
          f"{got['live_first_s'] * 1000:.0f} ms after the INVITE's answer")
    # the camera's current GOP is sent at once: no wait for its next keyframe (1 s GOP)
    assert got["live_first_s"] < 0.9, got["live_first_s"]
    assert "404" in got["vault"], got["vault"]
    assert "TCP/RTP/AVP" in got["playback_answer"] and "a=setup:active" in got["playback_answer"]
    assert got["first_codes"][0] == 0, got["first_codes"]  # the hour starts at its minute 0
    assert got["seek_pts"] == 0  # the seek landed on the keyframe of 30:30 exactly
    assert got["seek_codes"][0] == 30_000, got["seek_codes"][:5]  # 30:30 -> 30 s in its minute
    media_s, wall_s = got["scale2"]
    assert 1.6 <= media_s / wall_s <= 2.4, got["scale2"]  # 2x: two seconds per second
    assert got["paused_frames"] == 0
    assert got["ended"] == ["end of file"]
    assert "403" in got["download"], got["download"]

    db = Database(lower.settings.db_url)
    try:
        with db.session() as s:
            entries = [(e.action, e.outcome, e.camera_id, e.user_login, e.unit_name, e.purpose,
                        e.from_ms, e.to_ms)
                       for e in s.scalars(select(RegisterEntry).order_by(RegisterEntry.id))]
            # the register as an inspector reads it (the CSV of GET /api/register.csv)
            views = register.search(s, register.RegisterQuery(user=f"gb28181:{SERVER}"))
            csv_text = register.to_csv(views)
            audit = [a.kind for a in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))
                     if a.kind.startswith("footage.")]
    finally:
        db.dispose()
    who = f"gb28181:{SERVER}"
    assert [(a, o) for a, o, *_ in entries] == [("live", "allowed"), ("playback", "allowed"),
                                                ("playback", "allowed"), ("export", "refused")]
    assert all(e[2] == gate and e[3] == who and SERVER in e[4] for e in entries), entries
    assert all(CH_GATE in e[5] and "upper platform" in e[5] for e in entries), entries
    assert entries[1][6:] == (hour0, hour0 + 60 * MINUTE_MS)
    assert len(views) == 4
    assert sum(who in line for line in csv_text.splitlines()[1:]) == 4, csv_text
    # each decision is also in the tamper-evident audit log, in the same transaction
    assert audit == ["footage.live", "footage.playback", "footage.playback", "footage.denied"]
    print(f"recorded hour encoded and indexed in {enc_s:.1f} s")
