"""Storage quality (Q19.6): the resolution, frame rate and bit rate of what the real recorder
stored from a simulated camera, checked against the rule packs' minimums; a shortfall opens
a ``storage_quality`` fault (and its ticket) and clears when the recordings meet them."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from tests.media.recording import add_camera, make_app, record_for
from viis.health.models import Fault
from viis.health.quality import KIND, Minimum, check_storage_quality, minimums
from viis.health.tickets import FaultTicket, TicketDesk
from viis.simcam import SimFleet


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quality")
    fleet = SimFleet(1, width=320, height=180, fps=10, gop_s=1.0, cycle_s=4.0, bitrate=300_000,
                     cache_dir=tmp / "clips")
    fleet.start()
    app = make_app(tmp, VIIS_STORAGE__SEGMENT_SECONDS="2")
    desk = TicketDesk(app, hold_s=0)
    try:
        cid = add_camera(app, "gate", fleet.url(0))
        asyncio.run(record_for(app, 5.0))
        yield app, cid
    finally:
        desk.detach()
        fleet.stop()
        app.close()


def _open(app, cid):
    with app.db.session() as s:
        return list(s.scalars(select(Fault).where(Fault.camera_id == cid, Fault.kind == KIND,
                                                  Fault.cleared_ms.is_(None))))


def test_minimums_come_from_the_rule_packs_and_the_bitrate_setting(recorded):
    app, _ = recorded
    mins = minimums(app, app.clock.wall_ms(), 256_000)
    assert mins["width"].value == 1280 and mins["height"].value == 720 and mins["fps"].value == 15
    assert "Q19.6" in mins["width"].source and "storage_min_width" in mins["width"].source
    assert "bitrate_bps" in mins and "no rule pack" in mins["bitrate_bps"].source
    assert "bitrate_bps" not in minimums(app, app.clock.wall_ms(), 0)


def test_recording_below_the_minimums_raises_storage_quality_with_the_measured_figures(recorded):
    """320x180 at 10 fps is below 1280x720 and 15 fps: a fault with a ticket, naming each
    shortfall and the article."""
    app, cid = recorded
    out = check_storage_quality(app, app.clock.wall_ms(), window_s=60)
    r = out[cid]["recorded"]
    assert (r["width"], r["height"]) == (320, 180)
    assert 9.0 <= r["fps"] <= 11.0
    assert 150_000 <= r["bitrate_bps"] <= 450_000  # the simulator streams 300 kbit/s
    short = out[cid]["shortfalls"]
    assert any(x.startswith("width 320 px below the minimum 1280") for x in short)
    assert any(x.startswith("height 180 px") for x in short)
    assert any(x.startswith("fps ") for x in short)
    assert not any(x.startswith("bitrate") for x in short)
    (f,) = _open(app, cid)
    assert "320x180" in f.message and "Q19.6" in f.message
    with app.db.session() as s:
        assert s.scalar(select(FaultTicket.kind).where(FaultTicket.camera_id == cid)) == KIND


def test_recording_meeting_the_minimums_clears_it(recorded):
    app, cid = recorded
    check_storage_quality(app, app.clock.wall_ms(), window_s=60)
    assert _open(app, cid)
    ok = {"width": Minimum(320, "test"), "height": Minimum(180, "test"), "fps": Minimum(8, "test"),
          "bitrate_bps": Minimum(100_000, "test")}
    out = check_storage_quality(app, app.clock.wall_ms(), window_s=60, mins=ok)
    assert out[cid]["shortfalls"] == [] and not _open(app, cid)


def test_a_bit_rate_below_the_setting_is_a_shortfall(recorded):
    app, cid = recorded
    out = check_storage_quality(app, app.clock.wall_ms(), window_s=60, min_bitrate_bps=2_000_000)
    assert any(x.startswith("bitrate_bps") and "2e+06" in x for x in out[cid]["shortfalls"])


def test_no_recording_in_the_window_judges_nothing(recorded):
    app, cid = recorded
    out = check_storage_quality(app, app.clock.wall_ms() + 10 * 3_600_000, window_s=60)
    assert cid not in out
