"""Shared fixtures. Tests that touch the database run on SQLite and on PostgreSQL
(``db`` is parametrised); PostgreSQL is the server on 127.0.0.1:5432 (trust auth, database
``test``), each test in its own schema."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from viis.compliance.rulepack import RuleBook
from viis.core.clock import ManualClock
from viis.core.config import REPO_ROOT
from viis.core.db import Database

PG_URL = os.environ.get("VIIS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_database(tmp_name: str) -> tuple[Database, callable]:
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{tmp_name}"'))
    sep = "&" if "?" in PG_URL else "?"
    db = Database(f"{PG_URL}{sep}options=-csearch_path%3D{tmp_name}")

    def drop() -> None:
        db.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{tmp_name}" CASCADE'))
        admin.dispose()

    return db, drop


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url_kind(request) -> str:
    return request.param


@pytest.fixture
def db(db_url_kind: str, tmp_path: Path):
    if db_url_kind == "sqlite":
        d = Database(f"sqlite:///{tmp_path / 'viis.db'}")
        d.migrate()
        yield d
        d.dispose()
        return
    d, drop = _pg_database("t_" + uuid.uuid4().hex[:12])
    try:
        d.migrate()
        yield d
    finally:
        drop()


@pytest.fixture
def pg_url():
    """URL of a fresh PostgreSQL schema (dropped afterwards), for whole-system tests."""
    name = "t_" + uuid.uuid4().hex[:12]
    d, drop = _pg_database(name)
    d.dispose()
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{name}"
    finally:
        drop()


@pytest.fixture
def sqlite_db(tmp_path: Path):
    d = Database(f"sqlite:///{tmp_path / 'viis.db'}")
    d.migrate()
    yield d
    d.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def rules() -> RuleBook:
    return RuleBook.load(REPO_ROOT / "rulepacks")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    p = tmp_path / "segments"
    p.mkdir()
    return p


class Footage:
    """Writes index rows and files the way the recorder does, for tests of the layers above
    it (verifier, retention, read side) that do not need a live stream."""

    def __init__(self, db: Database, store: Path, clock: ManualClock, rules: RuleBook):
        from viis.registry.service import CameraService

        self.db, self.store, self.clock = db, store, clock
        self.cameras = CameraService(rules, clock)

    def camera(self, name: str = "cam", **kw):
        from viis.registry.service import CameraInput

        with self.db.session() as s:
            return self.cameras.add(s, CameraInput(name=name, main_url=f"rtsp://127.0.0.1/{name}", **kw))

    def segment(self, cam, start_ms: int, dur_ms: int = 60_000, payload: bytes | None = None):
        import hashlib
        import os

        from viis.media.index import SegmentRecord, append_segment

        data = payload if payload is not None else os.urandom(2048)
        rel = f"{cam.uid}/{start_ms}.mp4"
        p = self.store / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(0o444)
        rec = SegmentRecord(start_ms=start_ms, end_ms=start_ms + dur_ms, frames=dur_ms // 40,
                            nbytes=len(data), sha256=hashlib.sha256(data).hexdigest(), path=rel,
                            video_codec="h264", width=640, height=360, fps=25.0)
        with self.db.session() as s:
            from viis.registry.models import Camera
            return append_segment(s, s.get(Camera, cam.id), rec, self.clock.wall_ms())

    def gap(self, cam, start_ms: int, end_ms: int, cause: str = "unreachable"):
        from viis.media.index import append_gap
        from viis.registry.models import Camera

        with self.db.session() as s:
            return append_gap(s, s.get(Camera, cam.id), start_ms, end_ms, cause, "", self.clock.wall_ms())


@pytest.fixture
def footage(db, store, clock, rules) -> Footage:
    return Footage(db, store, clock, rules)
