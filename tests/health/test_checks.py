"""The periodic checks of ``viis run`` on a driven clock (Q19.3 signal loss; Q19.6 storage
quality): a camera of the recorder that sends nothing raises ``video_signal_loss`` after the
threshold, not before; storage quality runs only every ``storage_check_s``."""

from __future__ import annotations

from sqlalchemy import select

from tests.media.recording import add_camera
from viis.app import App
from viis.core.clock import ManualClock
from viis.core.config import load_settings
from viis.health.checks import PeriodicChecks
from viis.health.models import Fault
from viis.health.monitor import HealthMonitor


class _RecorderCameras:
    """The two things the monitor reads of the recorder: its tap hook and its cameras."""

    def __init__(self, ids):
        self.cameras = {i: type("C", (), {"paused": None})() for i in ids}
        self.taps = []

    def add_keyframe_tap(self, fn):
        self.taps.append(fn)


def test_signal_loss_after_the_threshold_and_storage_check_on_its_period(tmp_path):
    clock = ManualClock()
    app = App.open(load_settings(environ={
        "VIIS_DATA_DIR": str(tmp_path / "d"), "VIIS_LOG__JSON": "false",
        "VIIS_HEALTH__SIGNAL_LOSS_S": "30", "VIIS_HEALTH__STORAGE_CHECK_S": "300"}), clock=clock)
    try:
        cid = add_camera(app, "gate", "rtsp://127.0.0.1:1/x")
        rec = _RecorderCameras([cid])
        mon = HealthMonitor(app, rec, interval_s=10, loss_s=app.settings.health.signal_loss_s)
        checks = PeriodicChecks(app, mon)
        clock.advance(29)
        checks.run_once()
        with app.db.session() as s:
            assert s.scalars(select(Fault)).all() == []
        clock.advance(2)
        checks.run_once()
        with app.db.session() as s:
            (f,) = s.scalars(select(Fault)).all()
        assert f.kind == "video_signal_loss" and f.camera_id == cid and f.severity == "critical"
        assert "score 31.0 (threshold 30)" in f.message
        assert checks._next_storage_ms == clock.wall_ms() - 2000 + 300_000  # first check later
        mon.close()
    finally:
        app.close()
