"""Media answering to an upper platform (Q13.1; Q12.1, N12.1), with a bare SIP endpoint as
the upper: live over TCP where the upper asks us to listen (a=setup:active), the refusals
a real upper meets (unsupported session, playback without a range or without footage, a
channel above its grade), MANSRTSP errors, and one register entry per allowed or refused
INVITE under the upper platform's identity (Q19.1, Q24.1(3), N16.1)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from sqlalchemy import select

from tests.interconnect.cascade_helpers import (
    RecordingUpper,
    add_camera,
    add_upper,
    share,
    wait_for,
)
from tests.interconnect.gbmedia import MINUTE_MS, record_hour, synthetic_minute
from viis.access.retrieval_models import RegisterEntry
from viis.core.clock import SystemClock
from viis.interconnect.gb28181 import mansrtsp
from viis.interconnect.gb28181.cascade import Cascade
from viis.interconnect.gb28181.endpoint import InviteError
from viis.interconnect.gb28181.feeds import LiveTap
from viis.interconnect.gb28181.rtpps import PsReceiver
from viis.interconnect.gb28181.sdp import GbSdp, build_sdp, parse_sdp
from viis.interconnect.gb28181.serve import MediaAnswerer
from viis.media.rtp import AccessUnit

CH1, CH2 = "34020000001310000001", "34020000001310000002"
T0 = 1_767_225_600_000


def _sdp(session="Play", tcp=False, setup=None, start=0, end=0, port=9, ssrc="0340200011"):
    return build_sdp(GbSdp(session=session, origin_id="34020000002000000001", ip="127.0.0.1",
                           port=port, transport="TCP" if tcp else "UDP", setup=setup,
                           payloads={96: "PS"}, ssrc=ssrc, start=start, end=end))


def test_live_over_tcp_where_we_listen_and_the_refusals_an_upper_meets(sqlite_db, rules,
                                                                      tmp_path):
    app = SimpleNamespace(db=sqlite_db, clock=SystemClock(),
                          settings=SimpleNamespace(segments_path=tmp_path / "store"))
    minute = synthetic_minute()

    async def main():
        a = add_camera(app, rules, "gate", level=1)
        b = add_camera(app, rules, "vault", level=1)
        record_hour(sqlite_db, app.settings.segments_path, a.id, T0, minutes=1, frames=minute)
        up = await RecordingUpper().start()
        u = add_upper(app, up.port, keepalive_s=5, register_expires=3600, level=1)
        share(app, u, [{"camera_id": a.id, "channel_id": CH1},
                       {"camera_id": b.id, "channel_id": CH2}])
        from viis.registry.models import Camera
        with sqlite_db.session() as s:
            s.get(Camera, b.id).security_level = 2  # above the grade after sharing
        c = Cascade(app, host="127.0.0.1", port=0, t1=0.05)
        tap = LiveTap()
        state = {a.id: "recording"}
        m = MediaAnswerer(app, c, tap, bind_host="127.0.0.1", camera_state=state.get)
        c.set_invite_handler(m.on_invite)
        await c.start()
        out = {}

        async def invite(ch, sdp):
            return await up.ep.invite(f"sip:{ch}@127.0.0.1:{c.local_port}",
                                      ("127.0.0.1", c.local_port), sdp=sdp,
                                      to=f"sip:{ch}@3402000000")
        try:
            assert await wait_for(lambda: all(x.registered for x in c.clients.values()))
            # live, TCP, the upper connects to us (it offered a=setup:active)
            d, resp = await invite(CH1, _sdp(tcp=True, setup="active"))
            ans = parse_sdp(resp.body)
            out["answer"] = (ans.transport, ans.setup, ans.direction, ans.ssrc)
            frames = []
            recv = await PsReceiver.open("tcp-active", frames.append, 340200011,
                                         remote=("127.0.0.1", ans.port))
            for t, nals, key in minute[:30]:
                tap(a.id, "h264", 90000, AccessUnit(0, t * 90, nals, key, T0 + t, 0.0), [])
                await asyncio.sleep(0.01)
            assert await wait_for(lambda: len(frames) >= 25, 10), recv.stats
            st = m.status()
            out["status"] = (len(st), st[0]["session"], st[0]["mode"], st[0]["frames"] >= 25,
                             st[0]["feed"]["drops"])
            out["frames"] = (frames[0].key, frames[0].codec, len(frames))
            r = await up.ep.in_dialog(d, "INFO", mansrtsp.build("PAUSE", 1),
                                      "Application/MANSRTSP")
            out["live_info"] = r.status  # nothing to pause in a live stream
            # the upper drops the media connection without a BYE: we hang up
            await recv.close()
            assert await wait_for(lambda: not m.sessions and tap.viewers(a.id) == 0, 10)
            assert await wait_for(lambda: not d.active, 10), "no BYE came from the lower"
            # playback: a bad scale is 457, the session stays
            d, resp = await invite(CH1, _sdp("Playback", start=T0 // 1000,
                                             end=(T0 + MINUTE_MS) // 1000, ssrc="1340200012"))
            r = await up.ep.in_dialog(d, "INFO", mansrtsp.build("PLAY", 1, scale=16),
                                      "Application/MANSRTSP")
            out["bad_scale"] = r.status
            r = await up.ep.in_dialog(d, "INFO", b"GARBAGE\r\n", "Application/MANSRTSP")
            out["garbage"] = r.status
            await up.ep.bye(d)
            # refusals
            statuses = []
            for ch, sdp in ((CH1, _sdp("Talk")),  # not a session we serve
                            (CH1, _sdp("Playback")),  # no t= range
                            (CH1, _sdp("Playback", start=T0 // 1000 + 3600,
                                       end=T0 // 1000 + 7200)),  # nothing recorded then
                            (CH2, _sdp()),  # above the grade: as if it did not exist
                            ("34020000001310000999", _sdp()),  # unknown channel
                            (CH1, _sdp("Download", start=T0 // 1000,
                                       end=(T0 + MINUTE_MS) // 1000))):  # a copy: the door
                try:
                    await invite(ch, sdp)
                    statuses.append(200)
                except InviteError as e:
                    statuses.append(e.response.status)
            out["refusals"] = statuses
            state[a.id] = "backoff"  # the recorder cannot reach the camera
            try:
                await invite(CH1, _sdp())
                out["offline"] = 200
            except InviteError as e:
                out["offline"] = e.response.status
        finally:
            await m.close()
            await c.stop()
            await up.stop()
        return out

    out = asyncio.run(asyncio.wait_for(main(), 90))
    assert out["answer"] == ("TCP", "passive", "sendonly", "0340200011")
    assert out["frames"][:2] == (True, "h264") and out["frames"][2] >= 25
    assert out["status"] == (1, "Play", "tcp-passive", True, 0)
    assert out["live_info"] == 455
    assert out["bad_scale"] == 457 and out["garbage"] == 400
    assert out["refusals"] == [488, 400, 404, 404, 404, 403]
    assert out["offline"] == 480
    with sqlite_db.session() as s:
        entries = [(e.action, e.outcome, e.user_login, e.request_kind)
                   for e in s.scalars(select(RegisterEntry).order_by(RegisterEntry.id))]
    who = "gb28181:34020000002000000001"
    # live, playback, download; the refusals before the door leave no entry
    assert entries == [("live", "allowed", who, "gb28181"),
                       ("playback", "allowed", who, "gb28181"),
                       ("export", "refused", who, "gb28181")], entries
