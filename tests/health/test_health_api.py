"""Health API for the console's health wall (Q19.3 faults repaired, an emergency measure when
a repair cannot be quick; availability and fault history per camera), on SQLite and
PostgreSQL, with a driven clock. Who may call which route is in tests/access/test_matrix.py."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.access.helpers import Site
from viis.health.faults import clear_fault, raise_fault
from viis.health.models import ClockReading
from viis.health.tickets import FaultTicket, TicketDesk
from viis.media.models import Segment

HOUR = 3_600_000


@pytest.fixture
def site(tmp_path, db, clock):
    site = Site(tmp_path, db, clock)
    clock.advance(3 * 86_400)  # room for history before "now"
    desk = TicketDesk(site.app, hold_s=600)
    r = site.admin.post("/api/cameras", json={"name": "gate", "main_url": "rtsp://h/x"})
    assert r.status_code == 201, r.text
    site.cam = r.json()["id"]
    r = site.admin.post("/api/cameras", json={"name": "vault", "main_url": "rtsp://h/y",
                                              "security_level": 4})
    site.secret_cam = r.json()["id"]
    site.user("maint", ("maintainer",))
    site.maint = site.sign_in("maint")
    site.user("low", ("operator_on_duty",), clearance=1)
    site.low = site.sign_in("low")
    try:
        yield site
    finally:
        desk.detach()


def _segment(app, cid: int, seq: int, start: int, end: int, offset: int | None = None) -> None:
    with app.db.session() as s:
        s.add(Segment(camera_id=cid, seq=seq, start_ms=start, end_ms=end, duration_ms=end - start,
                      frames=25, bytes=1000, video_codec="h264", width=1280, height=720, fps=25.0,
                      bitrate_bps=8000, clock_offset_ms=offset, sha256="0" * 64,
                      path=f"x/{seq}.mp4", prev_hash="0" * 64, chain_hash=f"{seq:064d}",
                      created_ms=end, retain_until_ms=end + 30 * 86_400_000))


def _fault(site, kind="video_occluded", severity="critical") -> int:
    now = site.clock.wall_ms()
    with site.app.db.session() as s:
        raise_fault(s, kind, severity, f"{kind}: score 0.52 (threshold 0.2)", now,
                    camera_id=site.cam)
    with site.app.db.session() as s:
        return s.scalar(select(FaultTicket.id).where(FaultTicket.kind == kind))


def test_the_wall_shows_status_open_faults_availability_and_clock(site):
    now = site.clock.wall_ms()
    _segment(site.app, site.cam, 1, now - 12 * HOUR, now - 6 * HOUR, offset=-80)
    with site.app.db.session() as s:
        s.add(ClockReading(camera_id=site.cam, at_ms=now - HOUR, source="timecode",
                           offset_ms=30_012, epoch_reset=False))
    _fault(site)
    r = site.maint.get("/api/health/cameras")
    assert r.status_code == 200, r.text
    body = r.json()
    tile = body["cameras"][0]  # worst first
    assert tile["name"] == "gate" and tile["status"] == "critical"
    assert [f["kind"] for f in tile["open_faults"]] == ["video_occluded"]
    assert tile["open_tickets"] == 1 and tile["overdue_tickets"] == 0
    assert tile["availability_24h"] == 0.25  # 6 h recorded of 24
    assert tile["clock"]["timecode"]["offset_ms"] == 30_012
    assert tile["clock"]["segment_rtcp_sr"]["offset_ms"] == -80
    assert body["counts"]["critical"] == 1 and body["counts"]["ok"] == 1
    assert "synced" in body["server_clock"]
    assert "password" not in r.text and "rtsp://" not in r.text
    # the history: daily availability, faults (cleared ones too) and tickets
    _segment(site.app, site.cam, 2, now - 30 * HOUR, now - 26 * HOUR)
    _fault(site, "video_blur", "warning")
    site.clock.advance(60)
    with site.app.db.session() as s:
        clear_fault(s, "video_blur", site.clock.wall_ms(), camera_id=site.cam)
    r = site.maint.get(f"/api/health/cameras/{site.cam}/history?days=3")
    assert r.status_code == 200, r.text
    h = r.json()
    assert len(h["daily"]) == 3 and all(0 <= d["availability"] <= 1 for d in h["daily"])
    assert sum(d["availability"] > 0 for d in h["daily"]) >= 1
    blur = [f for f in h["faults"] if f["kind"] == "video_blur"]
    assert blur and blur[0]["cleared"]
    assert {t["kind"]: t["status"] for t in h["tickets"]} == {"video_occluded": "open",
                                                               "video_blur": "cleared"}
    assert h["clock"][0]["offset_ms"] == 30_012
    assert 0 < h["availability"] < 1


def test_tickets_are_acknowledged_repaired_given_an_emergency_measure_and_closed(site):
    """Q19.3: ack, repair with a note, close only once the fault stayed away; an overdue
    ticket closes only with the emergency measure on record."""
    tid = _fault(site)
    r = site.maint.post(f"/api/health/tickets/{tid}/ack")
    assert r.status_code == 200 and r.json()["status"] == "acknowledged"
    assert r.json()["acked_by"] == "maint"
    r = site.maint.post(f"/api/health/tickets/{tid}/close")
    assert r.status_code == 400 and "still present" in r.json()["error"]
    r = site.maint.post(f"/api/health/tickets/{tid}/repair", json={"note": "lens cleaned"})
    assert r.status_code == 200 and r.json()["status"] == "repaired"
    with site.app.db.session() as s:
        clear_fault(s, "video_occluded", site.clock.wall_ms(), camera_id=site.cam)
    site.clock.advance(601)
    r = site.maint.post(f"/api/health/tickets/{tid}/close")
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert site.maint.get("/api/health/tickets?open=true").json() == []
    assert [t["id"] for t in site.maint.get("/api/health/tickets").json()] == [tid]
    # past the repair deadline without a repair: overdue, and closing needs the emergency
    # measure on record (Q19.3)
    tid = _fault(site, "video_frozen")
    desk_sweep = TicketDesk(site.app, hold_s=0)  # the app's desk: same policy, no hold
    site.clock.advance(73 * 3600)
    desk_sweep.sweep()
    site.maint = site.sign_in("maint")  # the session of three days ago has expired
    with site.app.db.session() as s:
        clear_fault(s, "video_frozen", site.clock.wall_ms(), camera_id=site.cam)
    r = site.maint.post(f"/api/health/tickets/{tid}/close")
    assert r.status_code == 400 and "emergency measure" in r.json()["error"]
    r = site.maint.post(f"/api/health/tickets/{tid}/emergency",
                        json={"measure": "spare camera on the same pole, streams as gate-b"})
    assert r.status_code == 200 and r.json()["emergency_measure"].startswith("spare camera")
    assert site.maint.post(f"/api/health/tickets/{tid}/close").status_code == 200


BAD_ACTIONS = [
    ("repair", {"note": "x" * 2001}),
    ("repair", {"note": ""}),
    ("repair", {"note": "ok", "by": "someone else"}),
    ("repair", {}),
    ("emergency", {"measure": ["not", "text"]}),
    ("emergency", {"measure": "m" * 5000}),
]
BAD_QUERIES = [
    "/api/health/cameras/{cam}/history?days=0", "/api/health/cameras/{cam}/history?days=91",
    "/api/health/cameras/{cam}/history?days=abc", "/api/health/cameras/abc/history",
    "/api/health/tickets?camera_id=notanumber", "/api/health/tickets?open=maybe",
]


def test_malformed_input_is_refused_and_hidden_things_are_not_found(site):
    tid = _fault(site)
    for path, body in BAD_ACTIONS:
        r = site.maint.post(f"/api/health/tickets/{tid}/{path}", json=body)
        assert r.status_code == 422, (path, body, r.text)
    t = site.maint.get("/api/health/tickets").json()[0]
    assert t["status"] == "open" and t["repair_note"] is None and t["emergency_measure"] is None
    for url in BAD_QUERIES:
        assert site.maint.get(url.format(cam=site.cam)).status_code == 422, url
    # unknown and hidden cameras and tickets are not found
    assert site.maint.get("/api/health/cameras/999999/history").status_code == 404
    assert site.maint.post("/api/health/tickets/999999/ack").status_code == 404
    # a camera above the user's clearance is not on the wall (Q13.1) nor in its history
    names = [c["name"] for c in site.low.get("/api/health/cameras").json()["cameras"]]
    assert names == ["gate"]
    assert site.low.get(f"/api/health/cameras/{site.secret_cam}/history").status_code == 404
