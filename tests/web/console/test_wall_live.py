"""Live fan-out and the live WebSocket (issue 3 item 3; invariants 3 and 6).

The hub is driven with access units as the recorder hands them over; the socket is tried
against the running console: one register entry per view session, the door's refusals, the
session check, hostile client messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.web.console.helpers import wait_until
from viis.media import live
from viis.media.live import LiveHub
from viis.media.rtp import AccessUnit

SPS = bytes([0x67, 0x42, 0xC0, 0x1E, 0xD9, 0x00, 0xA0, 0x47, 0xFE, 0xC8])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])
IDR = bytes([0x65, 0x88]) + bytes(200)
P = bytes([0x41, 0x9A]) + bytes(100)
STEP = 3600  # 25 fps at 90 kHz


def unit(i: int, key: bool, size: int = 0) -> AccessUnit:
    data = [IDR + bytes(size)] if key else [P + bytes(size)]
    return AccessUnit(0, 1_000_000 + i * STEP, data, key, 0, time.monotonic())


def feed(hub: LiveHub, frames: range, gop: int = 25, size: int = 0, camera: int = 1) -> None:
    for i in frames:
        k = i % gop == 0
        hub.on_unit(camera, "h264", 90000, unit(i, k, size), [SPS, PPS] if k else [])


def drain(v) -> list:
    out = list(v.queue)
    v.queue.clear()
    v.queued_bytes = 0
    return out


def test_a_camera_nobody_watches_builds_no_fragment_and_keeps_only_its_current_gop():
    hub = LiveHub()
    feed(hub, range(1, 20))  # no keyframe yet: nothing is kept at all
    assert hub.cameras == {}
    feed(hub, range(20, 110))
    cam = hub.cameras[1]
    assert cam.frames == 0  # no fragment built
    assert len(cam.gop) == 10 and cam.gop[0][3]  # frames 100..109, from the keyframe
    assert hub.budget.used == cam.gop_bytes


def test_the_hub_keeps_within_its_memory_budget_across_cameras():
    hub = LiveHub()
    hub.budget.limit = 200_000
    for cam in range(1, 30):
        feed(hub, range(0, 20), size=2_000, camera=cam)
    assert hub.budget.used <= 200_000
    assert sum(c.gop_bytes for c in hub.cameras.values()) == hub.budget.used


def test_a_new_viewer_gets_the_init_segment_then_fragments_from_a_keyframe_in_order():
    hub = LiveHub()
    v = hub.join(1)
    feed(hub, range(10, 60))  # starts mid-GOP: frames before 25 are not decodable
    msgs = drain(v)
    assert msgs[0]["type"] == "init" and msgs[0]["mime"] == 'video/mp4; codecs="avc1.42c01e"'
    assert msgs[1][4:8] == b"ftyp"
    frags = [m for m in msgs[2:] if isinstance(m, bytes)]
    assert len(frags) == 35  # 25..59
    syncs = [m for m in msgs[2:] if isinstance(m, dict)]
    assert [m["type"] for m in syncs] == ["key", "key"]  # before the keyframes at 25 and 50
    assert syncs[1]["t"] - syncs[0]["t"] == 1.0 and msgs[2] == syncs[0]
    seqs = [int.from_bytes(f[20:24], "big") for f in frags]
    assert seqs == sorted(seqs)
    first_traf = frags[0]
    assert first_traf[4:8] == b"moof" and b"mdat" in first_traf
    assert IDR in first_traf  # the first fragment is the keyframe
    # the player tells keyframes by the tfhd default-sample-flags bit (player.js isKeyFragment)
    assert frags[0][36:40] == b"tfhd" and frags[0][43] & 0x20 and not frags[1][43] & 0x20


def test_a_later_viewer_starts_at_once_with_the_current_group_of_pictures():
    hub = LiveHub()
    first = hub.join(1)
    feed(hub, range(0, 40))
    late = hub.join(1)
    msgs = drain(late)
    assert msgs[0]["type"] == "init"
    frags = [m for m in msgs[2:] if isinstance(m, bytes)]
    assert len(frags) == 15  # frames 25..39, decodable from the keyframe at 25
    assert msgs[2]["type"] == "key" and IDR in msgs[3]
    hub.leave(first)
    hub.leave(late)
    assert hub.viewers(1) == 0


def test_a_slow_viewer_is_dropped_to_the_next_keyframe_and_memory_stays_bounded():
    hub = LiveHub()
    slow, fast = hub.join(1), hub.join(1)
    peak = 0
    for i in range(0, 1001):  # nobody reads `slow`; `fast` is read every frame
        feed(hub, range(i, i + 1), size=30_000)
        peak = max(peak, slow.queued_bytes)
        drain(fast)
    assert slow.drops > 0
    assert peak <= live.MAX_QUEUED_BYTES + 40_000
    assert len(slow.queue) <= live.MAX_QUEUED_FRAGMENTS + 3
    frags = [m for m in slow.queue if isinstance(m, bytes) and m[4:8] == b"moof"]
    assert IDR in frags[0]  # after a drop the queue restarts at a keyframe
    assert fast.drops == 0


def test_the_end_of_a_camera_session_tells_viewers_and_a_new_session_starts_a_new_epoch():
    hub = LiveHub()
    v = hub.join(1)
    feed(hub, range(0, 30))
    hub.on_unit(1, "h264", 90000, None, [])
    msgs = drain(v)
    assert msgs[-1] == {"type": "lost"}
    feed(hub, range(5000, 5030))  # the stream returns with other timestamps
    msgs = drain(v)
    assert msgs[0]["type"] == "init" and msgs[1][4:8] == b"ftyp" and IDR in msgs[3]


def test_a_viewer_that_asks_for_keyframes_only_gets_them_and_every_frame_again_from_a_keyframe():
    """The page falls to keyframes only when it cannot decode in time (player.js CodecSink);
    the server then sends keyframes only, and every frame again from the NEXT keyframe
    (frames in between were not sent and later frames refer to them)."""
    hub = LiveHub()
    v = hub.join(1)
    feed(hub, range(0, 10))
    drain(v)
    v.want_keys_only(True)
    feed(hub, range(10, 60))  # keyframes at 25 and 50
    frags = [m for m in drain(v) if isinstance(m, bytes)]
    assert len(frags) == 2 and all(f[43] & 0x20 for f in frags)  # keyframe fragments only
    v.want_keys_only(False)
    feed(hub, range(60, 75))  # no keyframe yet: nothing, the gap cannot be decoded
    assert [m for m in drain(v) if isinstance(m, bytes)] == []
    feed(hub, range(75, 85))  # from the keyframe at 75: every frame
    frags = [m for m in drain(v) if isinstance(m, bytes)]
    assert len(frags) == 10 and frags[0][43] & 0x20 and not frags[1][43] & 0x20
    v.want_keys_only(False)  # asking again for what it has changes nothing
    feed(hub, range(85, 90))
    assert len([m for m in drain(v) if isinstance(m, bytes)]) == 5


def test_too_many_viewers_of_one_camera_are_refused():
    hub = LiveHub()
    for _ in range(live.MAX_VIEWERS_PER_CAMERA):
        hub.join(7)
    with pytest.raises(OverflowError):
        hub.join(7)


# --- the WebSocket against the running console -------------------------------------------
def _ws(console, camera_id: int, token: str | None):
    url = console.url.replace("http://", "ws://") + f"/api/cameras/{camera_id}/live"
    headers = {"Cookie": f"viis_session={token}"} if token else {}
    return connect(url, additional_headers=headers, open_timeout=30, max_size=None)


def _close_code(ws) -> int:
    with pytest.raises(ConnectionClosed) as e:
        for _ in range(1000):
            ws.recv(timeout=30)
    return e.value.rcvd.code if e.value.rcvd else -1


def _register(console, camera_id: int) -> list:
    from viis.access.register import RegisterQuery, search

    with console.app.db.session() as s:
        return [(r.outcome, r.action, r.user_login)
                for r in search(s, RegisterQuery(camera_id=camera_id, limit=1000))]


def _user(console, login: str, roles: set[str], trained: bool = True) -> str:
    from viis.access.models import Organisation

    pw = "viewer-pass-2026!"
    with console.app.db.session() as s:
        org = s.query(Organisation).first()
        u = console.ident.add_user(s, login=login, display_name=login, organisation_id=org.id,
                                   work_id=f"W-{login}", password=pw, roles=roles, clearance=5)
        if trained:
            now = console.app.clock.wall_ms()
            for topic in ("skills", "confidentiality"):
                console.ident.add_training(s, u.id, topic=topic, course="c",
                                           completed_ms=now - 1000,
                                           valid_until_ms=now + 86_400_000, recorded_by="t")
    return console.sign_in(login, pw)


def test_live_view_writes_one_register_entry_per_session_not_per_frame(console):
    cam = console.camera_ids()[3]
    before = _register(console, cam)
    with _ws(console, cam, console.token) as ws:
        hello = json.loads(ws.recv(timeout=30))
        assert hello["type"] == "hello" and abs(hello["server_ms"] - time.time() * 1000) < 5000
        ws.send(json.dumps({"op": "time", "t0": 123}))
        got, frames = [], 0
        while frames < 60:
            m = ws.recv(timeout=30)
            if isinstance(m, bytes):
                frames += 1
            else:
                got.append(json.loads(m))
        assert {"type": "time", "t0": 123} in [{k: g[k] for k in ("type", "t0")}
                                               for g in got if g["type"] == "time"]
        inits = [g for g in got if g["type"] == "init"]
        assert len(inits) == 1 and inits[0]["codec"] == "h264"
    after = _register(console, cam)
    assert after[len(before):] == [("allowed", "live", console.login)]


def test_live_view_refusals_close_the_socket_with_a_reason_and_are_registered(console):
    cam = console.camera_ids()[0]
    with _ws(console, cam, None) as ws:
        assert _close_code(ws) == 4401
    with _ws(console, cam, "vs_forged-token") as ws:
        assert _close_code(ws) == 4401
    admin_only = _user(console, "platformonly", {"platform_admin"})
    with _ws(console, cam, admin_only) as ws:  # the policy: a platform admin watches nothing
        assert _close_code(ws) == 4403
    untrained = _user(console, "untrained", {"operator_on_duty"}, trained=False)
    with _ws(console, cam, untrained) as ws:  # Q19.2: no footage without training
        assert _close_code(ws) == 4403
    with _ws(console, 999_999, console.token) as ws:
        assert _close_code(ws) == 4404
    reg = _register(console, cam)
    assert ("refused", "live", "platformonly") in reg and ("refused", "live", "untrained") in reg


def test_hostile_client_messages_are_ignored_and_the_view_goes_on(console):
    cam = console.camera_ids()[2]
    with _ws(console, cam, console.token) as ws:
        for junk in ("x" * 100_000, "not json", "[]", '{"op": "time", "t0": "a"}',
                     '{"op": "time", "t0": 1e300}', '{"op": "other"}', "\x00" * 50):
            ws.send(junk)
        ws.send(b"\x00\x01binary")
        frames = 0
        deadline = time.monotonic() + 30
        while frames < 30 and time.monotonic() < deadline:
            if isinstance(ws.recv(timeout=30), bytes):
                frames += 1
        assert frames >= 30


def test_a_page_that_asks_for_keyframes_only_receives_keyframes_only(console):
    from tests.web.console.helpers import wait_until

    cam = console.camera_ids()[2]
    with _ws(console, cam, console.token) as ws:
        wait_until(lambda: isinstance(ws.recv(timeout=30), bytes), 30)
        for junk in ('{"op": "keys", "on": 1}', '{"op": "keys"}', '{"op": "keys", "on": "yes"}'):
            ws.send(junk)  # ignored: not a boolean
        ws.send(json.dumps({"op": "keys", "on": True}))
        time.sleep(1.0)
        with contextlib.suppress(TimeoutError):  # what was queued before the request
            while True:
                ws.recv(timeout=0.3)
        keys, deadline = [], time.monotonic() + 30
        while len(keys) < 3 and time.monotonic() < deadline:
            m = ws.recv(timeout=30)
            if isinstance(m, bytes):
                keys.append(m)
        assert len(keys) == 3 and all(f[36:40] == b"tfhd" and f[43] & 0x20 for f in keys)
        ws.send(json.dumps({"op": "keys", "on": False}))
        got, deadline = [], time.monotonic() + 30
        while len(got) < 40 and time.monotonic() < deadline:
            m = ws.recv(timeout=30)
            if isinstance(m, bytes):
                got.append(bool(m[43] & 0x20))
        assert got.count(False) >= 20  # every frame again (GOP 1 s: 24 of 25 are not keys)


def test_signing_out_ends_an_open_live_view(console, monkeypatch):
    from viis.web import routes_live

    monkeypatch.setattr(routes_live, "RECHECK_S", 0.5)
    token = _user(console, "leaver", {"operator_on_duty"})
    cam = console.camera_ids()[1]
    with _ws(console, cam, token) as ws:
        wait_until(lambda: isinstance(ws.recv(timeout=30), bytes), 30)
        r = console.http(token).delete("/api/session")
        assert r.status_code == 200
        assert _close_code(ws) == 4401


def test_the_hub_runs_on_the_recorders_loop(console):
    async def where():
        return asyncio.get_running_loop() is console.loop
    assert console.call(where())
    assert console.api.state.live is not None


def test_a_camera_with_a_sub_stream_is_watched_live_through_it_while_the_main_is_recorded(console):
    cam = console.camera_ids()[3]  # the fixture gives the last camera a half-size sub stream
    with _ws(console, cam, console.token) as ws:
        hello = json.loads(ws.recv(timeout=30))
        assert hello["stream"] == "sub"
        init = None
        while init is None:
            m = ws.recv(timeout=30)
            if isinstance(m, str) and json.loads(m)["type"] == "init":
                init = json.loads(m)
        assert (init["width"], init["height"]) == (320, 180)
        assert isinstance(ws.recv(timeout=30), bytes)  # the init segment
        assert console.api.state.live.viewers(cam, sub=True) == 1
    with console.app.db.session() as s:
        from viis.media.models import Segment

        seg = s.query(Segment).filter_by(camera_id=cam).first()
        assert seg is not None and (seg.width, seg.height) == (640, 360)
    # the main stream of a camera without a sub stream is the recorded one
    with _ws(console, console.camera_ids()[0], console.token) as ws:
        assert json.loads(ws.recv(timeout=30))["stream"] == "main"


def test_an_h265_camera_gets_an_honest_message_in_its_tile_instead_of_a_black_picture(
        console, browser_page):
    """Debian's Chromium has no H.265 decoder: the tile says so and names the codec."""
    from tests.media import rtsp_server
    from tests.web.console.helpers import catalogue
    from viis.registry.service import CameraInput

    with rtsp_server.GstRtspServer() as srv:
        with console.app.db.session() as s:
            cam = console.app.cameras.add(s, CameraInput(name="hevc", main_url=srv.url("/h265"),
                                                         site="test site")).id
        console.recorder.reload()
        try:
            wait_until(lambda: (console.recorder.status(cam) or {}).get("codec") == "h265", 60, 0.5)
            r = console.http().put("/api/me/settings", json={"wall": {"layout": 1, "tiles": [cam]}})
            assert r.status_code == 200
            page = browser_page
            page.goto(console.url + "/#/wall")
            tile = page.locator(".tile[data-tile='0'] .player")
            wait_until(lambda: tile.get_attribute("data-state") == "unsupported", 45, 0.5)
            text = page.text_content(".tile[data-tile='0'] .status")
            assert text == catalogue("en")["wall.tile.unsupported"].format(codec="H265")
        finally:
            console.http().put("/api/me/settings", json={"wall": None})
            with console.app.db.session() as s:
                console.app.cameras.update(s, cam, {"enabled": False})
            console.recorder.reload()
