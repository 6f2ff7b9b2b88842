"""Playback for the browser (issue 3, item 4): a WebSocket session per playback that passes the
one door once (one register entry per session, Q19.1, N16.1), then short windows of fragmented
MP4 whose ``origin_ms`` is the exact wall time of their media time 0, so the player lands on
the frame whose painted time code matches the asked time; gaps are answered with where the
footage resumes. The timeline answers ranges and gaps with causes at any zoom, bounded."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import av
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.access.helpers import CHEAP, PASSWORD
from tests.media.recording import add_camera, make_app, rows
from viis.access.identity import IdentityService
from viis.access.policy import FOOTAGE_POLICY, LEVEL, ROLE_ORG_KINDS, ROLES
from viis.access.register import RegisterQuery, search
from viis.media.recorder import Recorder
from viis.media.timeline import MAX_ITEMS, timeline
from viis.simcam.fleet import SimFleet
from viis.simcam.timecode import decode_timecode, resolve_capture_ms
from viis.web.app import create_app

FPS = 25
FRAME_MS = 1000 / FPS
DAY = 86_400_000


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    """One simulated camera recorded for ~16 s in 4 s segments, dropped (refused 4 s) midway:
    real segments and a real gap with its cause."""
    tmp = tmp_path_factory.mktemp("pb")
    fleet = SimFleet(1, width=320, height=180, fps=FPS, gop_s=1.0, cycle_s=6.0, bitrate=300_000,
                     cache_dir=tmp / "clips")
    fleet.start()
    app = make_app(tmp, VIIS_RECORDER__STALL_TIMEOUT_S="3")
    cam = add_camera(app, "cam0", fleet.url(0))
    marks = {}

    async def scenario():
        r = Recorder(app)
        await r.start()
        try:
            await asyncio.sleep(9)
            marks["drop"] = app.clock.wall_ms()
            await asyncio.to_thread(fleet.inject, 0, "drop", refuse_s=4)
            await asyncio.sleep(12)
        finally:
            await r.stop()

    try:
        asyncio.run(scenario())
    finally:
        fleet.stop()
    ident = IdentityService(app.clock, CHEAP)
    with app.db.session() as s:
        org = ident.add_organisation(s, "unit", "using_unit").id
        now = app.clock.wall_ms()
        for login, roles in (("op", {"operator_on_duty"}), ("adm", {"platform_admin"})):
            u = ident.add_user(s, login=login, display_name=login, organisation_id=org,
                               work_id=f"W-{login}", password=PASSWORD, roles=roles, clearance=5)
            for topic in ("skills", "confidentiality"):
                ident.add_training(s, u.id, topic=topic, course=topic, completed_ms=now - DAY,
                                   valid_until_ms=now + DAY, recorded_by="test")
        orgs = {"using_unit": org}
        for role in ROLES:  # one trained user of every role, in an organisation that may hold it
            kind = sorted(ROLE_ORG_KINDS[role])[0] if "using_unit" not in ROLE_ORG_KINDS[role] else "using_unit"
            if kind not in orgs:
                orgs[kind] = ident.add_organisation(s, f"org-{kind}", kind).id
            u = ident.add_user(s, login=f"r-{role}", display_name=role, organisation_id=orgs[kind],
                               work_id=f"W-{role}", password=PASSWORD, roles={role}, clearance=5)
            for topic in ("skills", "confidentiality"):
                ident.add_training(s, u.id, topic=topic, course=topic, completed_ms=now - DAY,
                                   valid_until_ms=now + DAY, recorded_by="test")
    api = create_app(app, identity=ident)
    yield app, api, cam, fleet.cycle_ms, marks
    app.close()


def _client(api, login: str | None) -> TestClient:
    c = TestClient(api)
    if login:
        r = c.post("/api/session", json={"login": login, "password": PASSWORD})
        assert r.status_code == 200, r.text
    return c


def _window(ws, req_id: int, a: int, b: int):
    ws.send_text(json.dumps({"op": "fetch", "id": req_id, "from": a, "to": b}))
    head = json.loads(ws.receive_text())
    if head["type"] != "window":
        return head, b""
    data = b"".join(ws.receive_bytes() for _ in range(head["parts"]))
    return head, data


def _frames(data: bytes, origin_ms: float, approx_ms: int, cycle_ms: int):
    """(wall ms by the window's media time, capture ms painted in the pixels) per frame."""
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        Path(f.name).write_bytes(data)
        out = []
        with av.open(f.name) as c:
            for fr in c.decode(video=0):
                code = decode_timecode(fr.to_ndarray(format="gray"))
                if code is not None:
                    out.append((origin_ms + fr.time * 1000, resolve_capture_ms(code, approx_ms, cycle_ms)))
        return out


def test_a_window_starts_at_the_keyframe_and_its_origin_puts_the_asked_frame_within_one_frame(rec):
    app, api, cam, cycle, _ = rec
    segs, _ = rows(app, cam)
    t = segs[0].start_ms + 2_345  # mid-GOP: the window must start at the keyframe before it
    c = _client(api, "op")
    with c.websocket_connect(f"/api/cameras/{cam}/playback?start={t - 60_000}&end={t + 60_000}") as ws:
        head, data = _window(ws, 1, t, t + 3_000)
    assert head["type"] == "window" and head["from_ms"] == t
    assert t - 1_000 - FRAME_MS <= head["origin_ms"] <= t, "media time 0 is the keyframe at/before t"
    frames = _frames(data, head["origin_ms"], t, cycle)
    assert len(frames) >= 60
    # The frame shown at t: the last whose (window) wall time is <= t. Its painted capture time
    # is within one frame interval of t, plus what the recorder's clock mapping may add.
    shown = max((f for f in frames if f[0] <= t), key=lambda f: f[0])
    assert abs(shown[1] - t) <= FRAME_MS + 2 * FRAME_MS, (shown, t)
    # and every frame of the window keeps that relation (no drift across the window)
    worst = max(abs(w - cap) for w, cap in frames)
    assert worst <= 3 * FRAME_MS, worst


def test_one_register_entry_per_playback_session_however_many_windows(rec):
    app, api, cam, _, _ = rec
    segs, _ = rows(app, cam)
    a = segs[0].start_ms

    def entries():
        with app.db.session() as s:
            return [e for e in search(s, RegisterQuery(camera_id=cam)) if e.action == "playback"]

    before = len(entries())
    with _client(api, "op").websocket_connect(f"/api/cameras/{cam}/playback?start={a}&end={a + 60_000}") as ws:
        for i in range(4):
            head, _ = _window(ws, i, a + i * 2_000, a + i * 2_000 + 2_000)
            assert head["type"] == "window"
    after = entries()
    assert len(after) == before + 1 and after[-1].outcome == "allowed"


def test_who_may_not_play_back_is_refused_at_the_door_and_written_down(rec):
    app, api, cam, _, _ = rec
    q = f"/api/cameras/{cam}/playback?start=0&end=1000"
    with pytest.raises(WebSocketDisconnect) as e, _client(api, None).websocket_connect(q) as ws:
        ws.receive_text()
    assert e.value.code == 4401
    with pytest.raises(WebSocketDisconnect) as e, _client(api, "adm").websocket_connect(q) as ws:
        ws.receive_text()
    assert e.value.code == 4403  # a platform administrator touches no footage
    with app.db.session() as s:
        last = search(s, RegisterQuery(camera_id=cam))[-1]
    assert last.outcome == "refused" and last.action == "playback"
    with pytest.raises(WebSocketDisconnect) as e, \
            _client(api, "op").websocket_connect("/api/cameras/999/playback?start=0&end=1000") as ws:
        ws.receive_text()
    assert e.value.code == 4404


def test_every_role_gets_what_the_policy_table_gives_it_on_the_playback_socket(rec):
    """The access matrix for the WebSocket route (tests/access/test_matrix.py walks HTTP
    routes only): without an approved request, only roles with playback=LEVEL get in."""
    app, api, cam, _, _ = rec
    a = rows(app, cam)[0][0].start_ms
    for role in ROLES:
        c = _client(api, f"r-{role}")
        url = f"/api/cameras/{cam}/playback?start={a}&end={a + 60_000}"
        if FOOTAGE_POLICY[role]["playback"] is LEVEL:
            with c.websocket_connect(url) as ws:
                assert _window(ws, 1, a, a + 1_000)[0]["type"] == "window", role
        else:
            with pytest.raises(WebSocketDisconnect) as e, c.websocket_connect(url) as ws:
                ws.receive_text()
            assert e.value.code == 4403, role


def test_a_gap_answers_where_footage_resumes_and_hostile_messages_get_errors(rec):
    app, api, cam, _, marks = rec
    segs, gaps = rows(app, cam)
    assert gaps, "the drop must have left a gap"
    g = gaps[0]
    assert g.cause in ("unreachable", "stream_error")
    lo, hi = segs[0].start_ms, segs[-1].end_ms
    with _client(api, "op").websocket_connect(f"/api/cameras/{cam}/playback?start={lo}&end={hi}") as ws:
        head, _ = _window(ws, 7, g.start_ms + 10, min(g.end_ms, g.start_ms + 1_000))
        assert head == {"type": "empty", "id": 7, "next_ms": head["next_ms"]}
        assert g.end_ms - 10 <= head["next_ms"] <= g.end_ms + 2_000
        for bad in ("not json", json.dumps({"op": "delete"}), json.dumps({"op": "fetch", "id": 1}),
                    json.dumps({"op": "fetch", "id": "1", "from": lo, "to": lo + 1}),
                    json.dumps({"op": "fetch", "id": 1, "from": lo, "to": lo + 600_000}),
                    json.dumps({"op": "fetch", "id": 1, "from": lo - DAY, "to": lo}),
                    "x" * 10_000):
            ws.send_text(bad)
            err = json.loads(ws.receive_text())
            assert err["type"] == "error" and err["error"], bad
        head, data = _window(ws, 8, lo, lo + 1_000)  # the session still works
        assert head["type"] == "window" and data


def test_timeline_reports_the_gap_with_its_cause_at_every_zoom(rec):
    app, api, cam, _, _ = rec
    segs, gaps = rows(app, cam)
    g = gaps[0]
    c = _client(api, "op")
    for span, res in ((DAY, 60_000), (3_600_000, 2_000), (60_000, 50)):
        mid = (g.start_ms + g.end_ms) // 2
        r = c.get(f"/api/cameras/{cam}/timeline", params={
            "start": mid - span // 2, "end": mid + span // 2, "resolution_ms": res})
        assert r.status_code == 200, r.text
        body = r.json()
        if g.end_ms - g.start_ms >= res:
            shown = [x for x in body["gaps"] if x["start_ms"] <= g.start_ms and x["end_ms"] >= g.end_ms]
            assert shown and shown[0]["cause"] == g.cause, (span, body)
        else:  # too short to see at this zoom: counted on the range that spans it
            assert any(r_["hidden_causes"].get(g.cause) for r_ in body["ranges"]), (span, body)
    assert c.get(f"/api/cameras/{cam}/timeline",
                 params={"start": 0, "end": 1000, "resolution_ms": 0}).status_code == 400


def test_timeline_stays_bounded_and_merges_what_a_pixel_cannot_show(footage):
    cam = footage.camera()
    t0, span = 1_700_000_000_000, 6 * 3_600_000
    # six hours of 10 s segments with a 2 s outage after every fourth
    t, n, made = t0, 0, 0
    while t < t0 + span:
        footage.segment(cam, t, 10_000, payload=b"x" * 64)
        t += 10_000
        n += 1
        if n % 4 == 0:
            footage.gap(cam, t, t + 2_000, "stalled")
            t += 2_000
            made += 1
    with footage.db.session() as s:
        fine = timeline(s, cam.id, t0, t0 + 3_600_000)
        coarse = timeline(s, cam.id, t0, t0 + span, resolution_ms=60_000)
        bounded = timeline(s, cam.id, t0, t0 + span, max_items=100)
    assert len(fine["gaps"]) == 3_600_000 // 42_000 and all(g["cause"] == "stalled" for g in fine["gaps"])
    assert len(fine["ranges"]) == len(fine["gaps"]) + 1
    assert len(coarse["ranges"]) + len(coarse["gaps"]) <= 3 and coarse["resolution_ms"] == 60_000
    assert sum(r["hidden_gaps"] for r in coarse["ranges"]) == made
    assert coarse["ranges"][0]["hidden_causes"] == {"stalled": made}
    assert len(bounded["ranges"]) + len(bounded["gaps"]) <= 100
    assert bounded["resolution_ms"] > 1_500
    assert MAX_ITEMS <= 5_000
    for body in (fine, coarse, bounded):  # recorded time is what the segments hold, at any zoom
        assert body["recorded_ms"] == sum(
            min(x.end_ms, body["to_ms"]) - max(x.start_ms, body["from_ms"])
            for x in _segs(footage, cam.id, body["from_ms"], body["to_ms"]))


def _segs(footage, cam_id, a, b):
    from viis.media.index import segments_between
    with footage.db.session() as s:
        return segments_between(s, cam_id, a, b)
