"""Fault tickets (Q19.3: notify maintenance on a fault, repair it, and when it cannot be
repaired promptly record a temporary emergency measure). Time is driven by a ManualClock."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.media.recording import add_camera
from viis.app import App
from viis.core.clock import ManualClock
from viis.core.config import load_settings
from viis.health import tickets
from viis.health.faults import clear_fault, raise_fault
from viis.health.tickets import FaultTicket, TicketDesk, TicketError

HOUR = 3_600_000


class Recorded:
    def __init__(self):
        self.events = []

    def send(self, ev):
        self.events.append(ev)

    def names(self):
        return [e.event for e in self.events]


@pytest.fixture
def desk(tmp_path):
    clock = ManualClock()
    app = App.open(load_settings(environ={"VIIS_DATA_DIR": str(tmp_path / "data"),
                                          "VIIS_LOG__JSON": "false"}), clock=clock)
    cid = add_camera(app, "gate", "rtsp://127.0.0.1:1/x")
    d = TicketDesk(app, Recorded(), hold_s=600)
    yield d, app, clock, cid
    d.detach()
    app.close()


def _ticket(app, cid) -> FaultTicket:
    with app.db.session() as s:
        return s.scalars(select(FaultTicket).where(FaultTicket.camera_id == cid)).one()


def test_fault_opens_ticket_with_evidence_deadline_and_notifies(desk):
    """Q19.3: a raised fault opens a ticket (camera, type, evidence, first seen), with the
    repair deadline from the rule pack, and the maintainer is notified."""
    d, app, clock, cid = desk
    now = clock.wall_ms()
    jpeg = b"\xff\xd8fake-jpeg\xff\xd9"
    with app.db.session() as s:
        raise_fault(s, "video_black", "critical", "black", now, camera_id=cid, evidence=jpeg)
        raise_fault(s, "video_black", "critical", "black", now + 1000, camera_id=cid)  # no-op
    t = _ticket(app, cid)
    assert (t.kind, t.severity, t.first_seen_ms, t.status) == ("video_black", "critical", now, "open")
    assert open(t.evidence_path, "rb").read() == jpeg
    assert str(d.evidence_dir) in t.evidence_path
    assert t.repair_due_ms - t.first_seen_ms == 72 * HOUR  # qingdao-2020 fault_repair default
    assert "default" in t.repair_limit and "Q19.3" in t.repair_limit
    assert d.notifier.names() == ["opened"]
    assert d.notifier.events[0].camera_uid and d.notifier.events[0].ticket["kind"] == "video_black"
    assert t.notified_ms is not None


def test_lifecycle_ack_repair_clear_hold_close(desk):
    """Q19.3: acknowledged (who, when), repaired (note), closed only after the condition has
    stayed cleared for the hold time; a recurrence within the hold reopens the same ticket."""
    d, app, clock, cid = desk
    with app.db.session() as s:
        raise_fault(s, "video_blur", "warning", "blur", clock.wall_ms(), camera_id=cid)
    tid = _ticket(app, cid).id
    clock.advance(60)
    with app.db.session() as s:
        tickets.acknowledge(s, tid, "wang.li", clock.wall_ms())
    clock.advance(3600)
    with app.db.session() as s:
        tickets.record_repair(s, tid, "wang.li", "lens cleaned, refocused", clock.wall_ms())
        clear_fault(s, "video_blur", clock.wall_ms(), camera_id=cid)
    assert _ticket(app, cid).status == "cleared"
    clock.advance(300)
    with pytest.raises(TicketError, match="closes after"), app.db.session() as s:
        tickets.close(s, tid, "wang.li", clock.wall_ms())
    # comes back within the hold: same ticket, open again
    with app.db.session() as s:
        raise_fault(s, "video_blur", "warning", "blur again", clock.wall_ms(), camera_id=cid)
    t = _ticket(app, cid)
    assert (t.id, t.cleared_ms, t.recurrences) == (tid, None, 1)
    assert d.sweep(clock.wall_ms() + 10 * 600_000)["closed"] == 0  # present: never closes
    with app.db.session() as s:
        clear_fault(s, "video_blur", clock.wall_ms(), camera_id=cid)
    clock.advance(599)
    assert d.sweep()["closed"] == 0
    clock.advance(1)
    assert d.sweep()["closed"] == 1
    t = _ticket(app, cid)
    assert t.status == "closed" and t.resolution.startswith("repaired, verified")
    assert (t.acked_by, t.repair_note) == ("wang.li", "lens cleaned, refocused")
    assert d.notifier.names() == ["opened", "acknowledged", "repaired", "cleared", "recurred",
                                  "cleared", "closed"]


def test_past_deadline_overdue_and_emergency_measure_required(desk):
    """Q19.3: not repaired by the deadline -> flagged overdue (notified once); it cannot close
    until a temporary emergency measure is on record."""
    d, app, clock, cid = desk
    with app.db.session() as s:
        raise_fault(s, "video_occluded", "critical", "covered", clock.wall_ms(), camera_id=cid)
    tid = _ticket(app, cid).id
    clock.advance(72 * 3600 - 1)
    assert d.sweep()["overdue"] == 0
    clock.advance(1)
    assert d.sweep()["overdue"] == 1
    assert d.sweep()["overdue"] == 0  # flagged once
    assert _ticket(app, cid).overdue
    with app.db.session() as s:
        clear_fault(s, "video_occluded", clock.wall_ms(), camera_id=cid)
    clock.advance(3600)
    assert d.sweep()["closed"] == 0
    with pytest.raises(TicketError, match="emergency measure"), app.db.session() as s:
        tickets.close(s, tid, "zhang.wei", clock.wall_ms())
    with app.db.session() as s:
        tickets.record_emergency_measure(s, tid, "zhang.wei",
                                         "spare camera on the same pole", clock.wall_ms())
    assert d.sweep()["closed"] == 1
    t = _ticket(app, cid)
    assert t.overdue and t.emergency_measure and t.closed_ms
    assert t.resolution.startswith("cleared without a recorded repair")
    assert d.notifier.names() == ["opened", "overdue", "cleared", "emergency", "closed"]


def test_rolled_back_fault_notifies_nothing(desk):
    """A notification is only sent for a committed ticket (no phantom alarms)."""
    d, app, clock, cid = desk
    with pytest.raises(RuntimeError), app.db.session() as s:
        raise_fault(s, "video_frozen", "critical", "frozen", clock.wall_ms(), camera_id=cid)
        raise RuntimeError("boom")
    with app.db.session() as s:
        assert s.scalars(select(FaultTicket)).all() == []
    assert d.notifier.events == []


def test_system_fault_ticket_without_camera(desk):
    """Faults of the system itself (disk full) get tickets too (Q19.3 keep it running)."""
    d, app, clock, _cid = desk
    with app.db.session() as s:
        raise_fault(s, "storage_full", "critical", "disk full", clock.wall_ms())
    with app.db.session() as s:
        t = s.scalars(select(FaultTicket).where(FaultTicket.camera_id.is_(None))).one()
    assert t.kind == "storage_full" and d.notifier.events[0].camera_uid is None
