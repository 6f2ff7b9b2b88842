"""Duty and room tables (Q19.1, Q19.2, Q19.4, Q19.5, N16.1): shifts with their handover,
the duty log, the monitoring-room access register and suspicious-information reports to
the police with the footage they point at.

Like the retrieval register these rows are only ever added to or closed (a shift ended, a
visitor left, a report acknowledged); nothing updates what was written or deletes a row.
Names of visitors are stored as given, not as foreign keys: a visitor has no account.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from viis.core.db import Base


class DutyShift(Base):
    """One person on duty in the monitoring room from ``started_ms`` until ``ended_ms``,
    closed with a handover note to the next person (Q19.1)."""

    __tablename__ = "duty_shifts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    started_ms: Mapped[int] = mapped_column()
    ended_ms: Mapped[int | None] = mapped_column()
    handover_note: Mapped[str] = mapped_column(Text, default="")
    handover_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))

    __table_args__ = (Index("ix_duty_shifts_user", "user_id", "ended_ms"),)


class DutyLogEntry(Base):
    """What the person on duty saw or did, optionally pointing at a camera and a moment of
    footage (Q19.1)."""

    __tablename__ = "duty_log_entries"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    shift_id: Mapped[int] = mapped_column(ForeignKey("duty_shifts.id", ondelete="RESTRICT"))
    at_ms: Mapped[int] = mapped_column()
    text: Mapped[str] = mapped_column(Text)
    camera_id: Mapped[int | None] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    footage_ms: Mapped[int | None] = mapped_column()

    __table_args__ = (Index("ix_duty_log_entries_shift", "shift_id"),)


class RoomVisit(Base):
    """Someone entered the monitoring room (Q19.4): staff by account, visitors by name, ID
    number and organisation; why, and who let them in."""

    __tablename__ = "room_visits"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    entered_ms: Mapped[int] = mapped_column()
    left_ms: Mapped[int | None] = mapped_column()
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    person_name: Mapped[str] = mapped_column(String(100))
    id_number: Mapped[str] = mapped_column(String(32))
    organisation: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    admitted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    left_recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))

    __table_args__ = (Index("ix_room_visits_entered", "entered_ms"),)


class PoliceReport(Base):
    """Suspicious information reported to the police (Q19.5); ``status`` is reported or
    acknowledged (by a police user)."""

    __tablename__ = "police_reports"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at_ms: Mapped[int] = mapped_column()
    reporter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    shift_id: Mapped[int | None] = mapped_column(ForeignKey("duty_shifts.id", ondelete="RESTRICT"))
    text: Mapped[str] = mapped_column(Text)
    police_unit: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    acknowledged_ms: Mapped[int | None] = mapped_column()
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))


class PoliceReportRange(Base):
    """A camera × time range of footage a report points at, with the hold that keeps it."""

    __tablename__ = "police_report_ranges"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("police_reports.id", ondelete="RESTRICT"))
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    from_ms: Mapped[int] = mapped_column()
    to_ms: Mapped[int] = mapped_column()
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("holds.id", ondelete="RESTRICT"))

    __table_args__ = (Index("ix_police_report_ranges_report", "report_id"),)
