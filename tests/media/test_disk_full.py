"""A filled disk (a small tmpfs) raises the critical fault, stops the lowest-priority stream
first and removes no segment inside its retention — not by the recorder, not by the
sweeper (invariant 1; Q19.7, Q20.3, N17.1)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.media import rtsp_server
from tests.media.recording import add_camera, make_app, rows
from viis.core.clock import DAY_MS, ManualClock
from viis.health.models import Fault
from viis.integrity.verify import Verifier
from viis.media.models import Segment
from viis.media.recorder import Recorder
from viis.media.retention import sweep

MiB = 1024 * 1024


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "store"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the disk-full test (run as root): {r.stderr}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path, leave_free: int) -> None:
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with open(path / "filler.bin", "wb") as f:
        f.write(b"\0" * max(0, free - leave_free))


def _record(app, seconds, small_disk, leave_free):
    async def go():
        rec = Recorder(app)
        await rec.start()
        try:
            await asyncio.sleep(4)
            fill(small_disk, leave_free)
            await asyncio.sleep(seconds)
            return {cid: cr.status() for cid, cr in rec.cameras.items()}
        finally:
            await rec.stop()
    return asyncio.run(go())


def test_a_full_disk_stops_the_lowest_priority_stream_and_deletes_nothing(small_disk, tmp_path):
    with rtsp_server.GstRtspServer() as srv:
        app = make_app(tmp_path, VIIS_STORAGE__SEGMENT_DIR=str(small_disk),
                       VIIS_STORAGE__MIN_FREE_BYTES=str(8 * MiB), VIIS_STORAGE__CHECK_SECONDS="0.3",
                       VIIS_STORAGE__SEGMENT_SECONDS="3")
        low = add_camera(app, "low", srv.url("/h264"), priority=10)
        high = add_camera(app, "high", srv.url("/h264"), priority=90)
        status = _record(app, 10, small_disk, 8 * MiB + 100_000)  # the streams eat the rest
    assert status[low]["paused"] == "disk_full"
    assert status[high]["paused"] is None and status[high]["state"] == "recording"
    with app.db.session() as s:
        faults = list(s.scalars(select(Fault).where(Fault.kind == "disk_full")))
        before = list(s.scalars(select(Segment)))
    assert faults and faults[0].severity == "critical" and "No footage" in faults[0].message
    low_segs, low_gaps = rows(app, low)
    assert low_segs and "disk_full" in [g.cause for g in low_gaps]
    # Every segment written is still there, and the sweeper (with a clock inside
    # retention) removes none of them although the disk is full.
    clock = ManualClock(max(s.end_ms for s in before) + 29 * DAY_MS)
    assert sweep(app.db, app.settings.segments_path, clock).removed == 0
    with app.db.session() as s:
        assert all(r.removed_ms is None for r in s.scalars(select(Segment)))
        rep = Verifier(s, app.settings.segments_path, deep=True).run()
    assert rep.ok, [p.message for p in rep.problems]


def test_a_write_that_hits_enospc_keeps_what_was_written_and_records_a_gap(small_disk, tmp_path):
    with rtsp_server.GstRtspServer() as srv:
        # No reserve: the writes themselves run into ENOSPC.
        app = make_app(tmp_path, VIIS_STORAGE__SEGMENT_DIR=str(small_disk),
                       VIIS_STORAGE__MIN_FREE_BYTES="0", VIIS_STORAGE__CHECK_SECONDS="60",
                       VIIS_STORAGE__SEGMENT_SECONDS="30")
        cid = add_camera(app, "cam", srv.url("/h264"))
        _record(app, 12, small_disk, 150_000)
    segs, gaps = rows(app, cid)
    assert any(s.recovered for s in segs), "the segment cut short by ENOSPC is kept"
    assert "disk_full" in [g.cause for g in gaps]
    with app.db.session() as s:
        rep = Verifier(s, app.settings.segments_path, deep=True).run()
    assert rep.ok, [p.message for p in rep.problems]
