"""Faults raised by the system about itself and its cameras (the health issue extends them
into tickets with repair deadlines, Q19.3)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text
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
