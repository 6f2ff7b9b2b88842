"""Clock accuracy (Q19.3 "keep system time accurate"; invariant 5): simulated cameras ->
the real recorder -> keyframe tap -> HealthMonitor -> ClockWatch. A 30 s offset injected
in the simulator raises ``clock_offset`` with the measured offset within +-1 s; the video
fault of another camera opens a ticket with its JPEG evidence."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest
from sqlalchemy import select

from tests.media.recording import add_camera, make_app
from viis.health import clock as hclock
from viis.health.clock import ClockWatch, is_epoch_reset, server_clock_state
from viis.health.models import ClockReading, Fault
from viis.health.monitor import HealthMonitor, PersistenceRule
from viis.health.tickets import FaultTicket, TicketDesk
from viis.media.recorder import Recorder
from viis.simcam import SimFleet, timecode
from viis.simcam.clips import scene_box

RULE = PersistenceRule(n=3, m=4, min_s=2.0, clear_n=2)
OFFSET_S = 30
CYCLE_S = 70  # the time code is unambiguous within half a cycle


def _faults(app, cid, kind):
    with app.db.session() as s:
        return list(s.scalars(select(Fault).where(Fault.camera_id == cid, Fault.kind == kind)))


async def _until(cond, timeout):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if await loop.run_in_executor(None, cond):
            return True
        await asyncio.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clock")
    fleet = SimFleet(3, width=320, height=180, fps=10, gop_s=1.0, cycle_s=CYCLE_S)
    fleet.start()
    app = make_app(tmp, VIIS_STORAGE__SEGMENT_SECONDS="20")
    desk = TicketDesk(app, hold_s=1)
    ids = [add_camera(app, f"cam{i}", fleet.url(i)) for i in range(fleet.count)]
    out: dict = {"ids": ids}

    async def run():
        rec = Recorder(app)
        mon = HealthMonitor(app, rec, interval_s=1.0, rule=RULE,
                            roi=lambda _c, w, h: scene_box(w, h))
        watch = ClockWatch.attach(app, rec, mon, rule=RULE, record_s=2.0,
                                  timecode_cycle=lambda _cid: fleet.cycle_ms,
                                  onvif_url=lambda cid: fleet.onvif_url(ids.index(cid)),
                                  onvif_every_s=1.0)
        out["watch"] = watch
        await rec.start()
        loop = asyncio.get_running_loop()
        try:
            assert await _until(lambda: all(watch.status(c).get("offsets_ms") for c in ids), 20)
            out["before"] = {c: dict(watch.status(c)["offsets_ms"]) for c in ids}
            await loop.run_in_executor(None, lambda: fleet.inject(0, "clock_offset",
                                                                  offset_s=OFFSET_S))
            await loop.run_in_executor(None, lambda: fleet.inject(2, "black"))
            assert await _until(lambda: _faults(app, ids[0], "clock_offset")
                                and _faults(app, ids[2], "video_black"), 15), "no fault"
            out["during"] = {c: dict(watch.status(c)["offsets_ms"]) for c in ids}
            await loop.run_in_executor(None, lambda: fleet.clear(0))
            await loop.run_in_executor(None, lambda: fleet.clear(2))
            await _until(lambda: all(f.cleared_ms for f in _faults(app, ids[0], "clock_offset")),
                         10)
        finally:
            await rec.stop()
            mon.close()

    try:
        asyncio.run(run())
        out["faults"] = {c: _faults(app, c, "clock_offset") for c in ids}
        with app.db.session() as s:
            out["tickets"] = list(s.scalars(select(FaultTicket).order_by(FaultTicket.id)))
            out["readings"] = list(s.scalars(select(ClockReading).order_by(ClockReading.id)))
        print("offsets before", out["before"], "during", out["during"])
        for f in out["faults"][ids[0]]:
            print(f.message)
        yield out
    finally:
        desk.detach()
        fleet.stop()
        app.close()


def test_injected_30s_offset_raises_clock_fault_within_1s(scenario):
    """Q19.3 / invariant 5 done-when: a 30 s camera clock offset raises clock_offset with the
    measured offset within +-1 s, and it clears when the clock is right again."""
    cam = scenario["ids"][0]
    faults = scenario["faults"][cam]
    assert len(faults) == 1, [f.message for f in faults]
    f = faults[0]
    assert f.severity == "warning"
    measured = int(re.search(r"offset ([+-]\d+) ms", f.message).group(1))
    assert abs(measured - OFFSET_S * 1000) <= 1000, f.message
    assert "timecode" in f.message and "tolerance 10000 ms" in f.message
    assert f.cleared_ms is not None, "clock_offset did not clear after the offset was removed"


def test_measured_offsets_are_stored_per_camera_and_interval(scenario):
    """Invariant 5: the offset is stored, not only alarmed: at most one reading per source
    every ``record_s`` per camera, the injected 30 s among them."""
    rows = [r for r in scenario["readings"] if r.camera_id == scenario["ids"][0]]
    tc = [r for r in rows if r.source == "timecode"]
    assert any(abs(r.offset_ms - OFFSET_S * 1000) <= 1000 for r in tc), [r.offset_ms for r in tc]
    assert any(abs(r.offset_ms) < 1000 for r in tc)  # before the injection
    times = [r.at_ms for r in tc]
    assert all(b - a >= 2000 for a, b in zip(times, times[1:])), times
    assert not any(r.epoch_reset for r in rows)
    others = {r.camera_id for r in scenario["readings"]} - {scenario["ids"][0]}
    assert others == set(scenario["ids"][1:])


def test_onvif_clock_reads_the_injected_offset_independently(scenario):
    """Q19.3: the camera's own clock by ONVIF GetSystemDateAndTime (whole seconds) agrees with
    the picture: +30 s on the shifted camera, about 0 on the others."""
    during, before = scenario["during"], scenario["before"]
    cam = scenario["ids"][0]
    assert abs(during[cam]["onvif"] - OFFSET_S * 1000) <= 1500, during
    for c in scenario["ids"][1:]:
        assert abs(during[c]["onvif"]) <= 1500, during
    for c in scenario["ids"]:
        assert abs(before[c]["onvif"]) <= 1500, before
    assert any(r.source == "onvif" for r in scenario["readings"])


def test_cameras_in_time_raise_nothing_and_read_near_zero(scenario):
    """A camera whose clock is right is measured within tolerance and raises no clock fault."""
    for c in scenario["ids"][1:]:
        assert scenario["faults"][c] == []
        assert abs(scenario["during"][c]["timecode"]) < 1000, scenario["during"]
    for c in scenario["ids"]:
        assert abs(scenario["before"][c]["timecode"]) < 1000, scenario["before"]


def test_video_fault_ticket_keeps_the_keyframe_jpeg(scenario):
    """Q19.3: the black-screen fault opened a ticket with the deciding keyframe as evidence,
    and the clock fault got its own ticket."""
    by_cam = {(t.camera_id, t.kind): t for t in scenario["tickets"]}
    t = by_cam[(scenario["ids"][2], "video_black")]
    data = open(t.evidence_path, "rb").read()
    assert data[:2] == b"\xff\xd8" and len(data) > 500 and t.evidence_sha256
    assert (scenario["ids"][0], "clock_offset") in by_cam


class _Sr:
    def __init__(self, utc_ms, wall_ms):
        self.utc_ms, self.wall_ms = utc_ms, wall_ms
        import time
        self.mono = time.monotonic()


def test_epoch_reset_from_sender_report_is_a_fault(tmp_path):
    """A camera that lost its clock (1970) is caught from its RTCP SR even though the offset
    rule alone would need a tolerance: epoch reset is named in the fault (Q19.3)."""
    app = make_app(tmp_path)
    try:
        cid = add_camera(app, "old", "rtsp://127.0.0.1:1/x")
        now = 1_767_225_600_000
        srs = {cid: _Sr(utc_ms=5_000, wall_ms=now)}
        w = ClockWatch(app, sr_source=srs.get, rule=PersistenceRule(n=2, m=2, min_s=0, clear_n=1))
        for i in range(2):
            w.observe(cid, now + i * 1000, None)
        (f,) = _faults(app, cid, "clock_offset")
        assert "epoch reset" in f.message and "1970-01-01" in f.message
        srs[cid] = _Sr(utc_ms=now + 4000, wall_ms=now + 3900)  # fixed: +100 ms
        w.observe(cid, now + 5000, None)
        assert _faults(app, cid, "clock_offset")[0].cleared_ms == now + 5000
        assert w.status(cid)["offsets_ms"] == {"rtcp_sr": 100}
    finally:
        app.close()


def test_timecode_offset_and_epoch_floor():
    """The picture clock is read from the time code against the keyframe wall time."""
    luma = np.full((180, 320), 90, np.uint8)
    wall = 1_767_225_600_000
    timecode.draw_timecode(luma, (wall + 30_000) % 70_000)
    assert hclock.timecode_offset_ms(luma, wall, 70_000) == 30_000
    assert hclock.timecode_offset_ms(np.zeros((180, 320), np.uint8), wall, 70_000) is None
    assert is_epoch_reset(946_684_800_000) and not is_epoch_reset(wall)


def test_server_clock_state_is_reported():
    """Q19.3: the server's own sync state (adjtimex, read only) is reported."""
    st = server_clock_state()
    assert st["source"] == "adjtimex" and st["synced"] in (True, False)
    assert "state" in st and st["maxerror_ms"] >= 0
