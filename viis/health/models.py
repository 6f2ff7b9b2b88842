"""Faults raised by the system about itself and its cameras (the health issue extends them
into tickets with repair deadlines, Q19.3)."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from viis.core.db import Base


class Fault(Base):
    __tablename__ = "faults"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))  # info, warning, critical
    message: Mapped[str] = mapped_column(Text)
    opened_ms: Mapped[int] = mapped_column()
    cleared_ms: Mapped[int | None] = mapped_column()


class ClockReading(Base):
    """A camera's clock offset (camera minus server, ms) from one source at one time, stored
    per camera at most every ``health.clock_record_s`` (Q19.3, invariant 5). The RTCP offset
    is also stored per segment (``segments.clock_offset_ms``)."""

    __tablename__ = "clock_readings"
    __table_args__ = (Index("ix_clock_readings_camera_time", "camera_id", "at_ms"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    at_ms: Mapped[int] = mapped_column()
    source: Mapped[str] = mapped_column(String(16))  # rtcp_sr, timecode, ocr, onvif
    offset_ms: Mapped[int] = mapped_column()
    epoch_reset: Mapped[bool] = mapped_column(Boolean, default=False)
