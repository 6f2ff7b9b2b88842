"""Test helper: run the real recorder against real RTSP servers for a few seconds."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from viis.app import App
from viis.core.config import load_settings
from viis.media.models import Gap, Segment
from viis.media.recorder import Recorder
from viis.registry.service import CameraInput


def make_app(tmp_path: Path, db_url: str | None = None, **env: str) -> App:
    environ = {"VIIS_DATA_DIR": str(tmp_path / "data"), "VIIS_STORAGE__SEGMENT_SECONDS": "4",
               "VIIS_STORAGE__MIN_FREE_BYTES": "1024", "VIIS_RECORDER__RECONNECT_MIN_S": "0.5",
               "VIIS_RECORDER__RECONNECT_MAX_S": "2", "VIIS_LOG__JSON": "false"}
    if db_url:
        environ["VIIS_DATABASE_URL"] = db_url
    environ.update(env)
    return App.open(load_settings(environ=environ))


def add_camera(app: App, name: str, url: str, **kw) -> int:
    with app.db.session() as s:
        return app.cameras.add(s, CameraInput(name=name, main_url=url, **kw)).id


async def record_for(app: App, seconds: float, during=None) -> Recorder:
    """Run a recorder for ``seconds``; ``during(recorder)`` is awaited meanwhile."""
    rec = Recorder(app)
    await rec.start()
    try:
        if during is not None:
            await asyncio.wait_for(during(rec), seconds + 60)
        else:
            await asyncio.sleep(seconds)
    finally:
        await rec.stop()
    return rec


def rows(app: App, camera_id: int):
    with app.db.session() as s:
        segs = list(s.scalars(select(Segment).where(Segment.camera_id == camera_id).order_by(Segment.seq)))
        gaps = list(s.scalars(select(Gap).where(Gap.camera_id == camera_id).order_by(Gap.seq)))
    return segs, gaps
