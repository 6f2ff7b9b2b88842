"""Recording index: segments, gaps, holds and recorder runs.

Segments and gaps of one camera share one sequence (``seq``): together they are the links
of the camera's hash chain (invariant 2, Q20.3, N23.1). A removed segment keeps its row as
a tombstone (``removed_ms``) so the chain stays verifiable and every deletion is on record.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from viis.core.db import Base


class Segment(Base):
    __tablename__ = "segments"
    __table_args__ = (
        UniqueConstraint("camera_id", "seq"),
        Index("ix_segments_camera_time", "camera_id", "start_ms"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    seq: Mapped[int] = mapped_column()
    start_ms: Mapped[int] = mapped_column()
    end_ms: Mapped[int] = mapped_column()
    duration_ms: Mapped[int] = mapped_column()
    frames: Mapped[int] = mapped_column()
    bytes: Mapped[int] = mapped_column()
    video_codec: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    fps: Mapped[float] = mapped_column(Float)
    bitrate_bps: Mapped[int] = mapped_column()
    audio_codec: Mapped[str | None] = mapped_column(String(16))
    clock_offset_ms: Mapped[int | None] = mapped_column()
    sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(500))
    prev_hash: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))
    recovered: Mapped[bool] = mapped_column(Boolean, default=False)
    browser_playable: Mapped[bool] = mapped_column(Boolean, default=True)
    created_ms: Mapped[int] = mapped_column()
    retain_until_ms: Mapped[int] = mapped_column()
    removed_ms: Mapped[int | None] = mapped_column()
    removed_reason: Mapped[str | None] = mapped_column(String(200))


class Gap(Base):
    """A span without footage, with its cause: part of the record, not an absence of one."""

    __tablename__ = "gaps"
    __table_args__ = (
        UniqueConstraint("camera_id", "seq"),
        Index("ix_gaps_camera_time", "camera_id", "start_ms"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    seq: Mapped[int] = mapped_column()
    start_ms: Mapped[int] = mapped_column()
    end_ms: Mapped[int] = mapped_column()
    cause: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    chain_hash: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column()


class Hold(Base):
    """Evidence lock: footage of a camera (or all cameras) in a time range is kept past
    retention until the hold is released."""

    __tablename__ = "holds"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    start_ms: Mapped[int] = mapped_column()
    end_ms: Mapped[int] = mapped_column()
    reason: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    created_ms: Mapped[int] = mapped_column()
    released_ms: Mapped[int | None] = mapped_column()
    released_by: Mapped[str | None] = mapped_column(String(200))


class RecorderRun(Base):
    """One life of the recorder process: a run without ``stopped_ms`` ended in a crash."""

    __tablename__ = "recorder_runs"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    started_ms: Mapped[int] = mapped_column()
    stopped_ms: Mapped[int | None] = mapped_column()
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(200))
    # Set by the next run's recovery when this run ended without stopping.
    crashed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
