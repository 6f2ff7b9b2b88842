"""SIGKILL mid-segment: the restart recovers the open segment up to its last complete
fragment, records the lost tail as a crash_recovery gap, and `viis verify --deep` passes
(invariant 7; Q20.3). The bound we hold: at most 2 s of footage lost."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from viis.core.config import load_settings
from viis.core.db import Database
from viis.media.models import Gap, RecorderRun, Segment
from viis.simcam.fleet import SimFleet

VIIS = str(Path(sys.executable).with_name("viis"))
LOSS_BOUND_MS = 2000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_viis(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([VIIS, "--config", str(config), "run"], stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(cond, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkill_mid_segment_loses_at_most_the_unflushed_tail_and_verifies(tmp_path):
    fleet = SimFleet(2, width=320, height=180, gop_s=1.0, bitrate=300_000,
                     cache_dir=tmp_path / "clips").start()
    try:
        data = tmp_path / "data"
        cfg = tmp_path / "viis.toml"
        cams = "".join(f'[[cameras]]\nname = "cam{i}"\nmain_url = "{fleet.url(i)}"\n' for i in range(2))
        cfg.write_text(f'data_dir = "{data}"\n[http]\nport = {free_port()}\n'
                       f'[storage]\nsegment_seconds = 30\nmin_free_bytes = 1024\n'
                       f'[simcam]\nenabled = false\n[log]\njson = true\n{cams}')
        settings = load_settings(cfg, environ={})
        db = Database(settings.db_url)
        log = tmp_path / "viis.log"

        def segments():
            try:
                with db.session() as s:
                    return list(s.scalars(select(Segment).order_by(Segment.id)))
            except Exception:
                return []

        proc = start_viis(cfg, log)
        # Let the first (staggered, short) segments close, then kill inside the next ones.
        wait_for(lambda: len(segments()) >= 2, 60, "first segments")
        time.sleep(6)
        tmp_files = list(settings.segments_path.rglob("*.mp4.tmp"))
        assert tmp_files, "segments are open when the recorder dies"
        killed_ms = time.time_ns() // 1_000_000
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        before = {s.id for s in segments()}

        proc = start_viis(cfg, log)
        # recovered segments (2) and at least one new segment per camera
        wait_for(lambda: len(segments()) >= len(before) + 4, 90, "recording after the restart")
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]

        with db.session() as s:
            recovered = list(s.scalars(select(Segment).where(Segment.recovered.is_(True))))
            gaps = list(s.scalars(select(Gap).order_by(Gap.seq)))
            runs = list(s.scalars(select(RecorderRun).order_by(RecorderRun.id)))
        assert [r.crashed for r in runs] == [True, False]
        assert len(recovered) == len(tmp_files) == 2
        for seg in recovered:
            cam_gaps = [g for g in gaps if g.camera_id == seg.camera_id]
            assert [g.cause for g in cam_gaps] == ["crash_recovery"]
            gap = cam_gaps[0]
            assert gap.start_ms == seg.end_ms and gap.seq == seg.seq + 1
            lost = killed_ms - seg.end_ms
            assert 0 <= lost <= LOSS_BOUND_MS, f"lost {lost} ms of footage"
        out = subprocess.run([VIIS, "--config", str(cfg), "--json", "verify", "--deep"],
                             capture_output=True, text=True)
        report = json.loads(out.stdout)
        assert out.returncode == 0 and report["ok"], report["problems"]
        assert report["files_checked"] == len(segments())
        db.dispose()
    finally:
        fleet.stop()
