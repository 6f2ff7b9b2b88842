"""Retrieval requests (Q23), two-person retrieval sessions (Q24.1) and the retrieval
register (资料调取登记, Q19.1, Q24.1(3), N16.1).

The register is denormalised on purpose: an entry keeps the names, work ID numbers, unit,
purpose and approval as they were at the time of use, and has no foreign keys, so that
renaming or deactivating a user or closing a case never changes what was registered.
"""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from viis.core.db import Base


class RetrievalRequest(Base):
    __tablename__ = "retrieval_requests"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # police | department | emergency | individual
    status: Mapped[str] = mapped_column(String(16))  # pending | active | refused | closed
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    requesting_org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    # The bureau (Q23.1/Q23.2) or, for individuals, the using unit (N21.1) that decides.
    approving_org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    legal_basis: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(Text)
    case_number: Mapped[str] = mapped_column(String(100), default="")
    person_name: Mapped[str] = mapped_column(String(200), default="")  # N21.1: who views
    person_relation: Mapped[str] = mapped_column(String(32), default="")
    staff_work_ids: Mapped[str] = mapped_column(String(500))  # space separated (Q24.1(2))
    actions: Mapped[str] = mapped_column(String(100))  # space separated footage actions
    requested_until_ms: Mapped[int] = mapped_column()
    expires_ms: Mapped[int | None] = mapped_column()  # set when access is granted
    document_sha256: Mapped[str | None] = mapped_column(String(64))
    document_type: Mapped[str | None] = mapped_column(String(16))  # pdf | png | jpeg
    document_bytes: Mapped[int | None] = mapped_column()
    document_name: Mapped[str | None] = mapped_column(String(200))
    review_pending: Mapped[bool] = mapped_column(Boolean, default=False)  # Q23.3 after the fact
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    decided_ms: Mapped[int | None] = mapped_column()
    decision_note: Mapped[str] = mapped_column(Text, default="")
    closed_ms: Mapped[int | None] = mapped_column()
    closed_by: Mapped[str | None] = mapped_column(String(200))
    created_ms: Mapped[int] = mapped_column()
    # The GB/T 28181 upper platform (its server ID) the copy is delivered to by a Download
    # INVITE (Q13.1 with Q23.1, Q24.1); None: used only in two-person sessions here.
    # Migration 0009_gb_delivery.
    deliver_to: Mapped[str | None] = mapped_column(String(20))


class RetrievalRange(Base):
    """One camera × time range of a request, and the hold (evidence lock) placed on it."""

    __tablename__ = "retrieval_ranges"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("retrieval_requests.id", ondelete="RESTRICT"))
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    from_ms: Mapped[int] = mapped_column()
    to_ms: Mapped[int] = mapped_column()
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("holds.id", ondelete="RESTRICT"))

    __table_args__ = (Index("ix_retrieval_ranges_request", "request_id"),)


class RetrievalSession(Base):
    """Two distinct, authenticated, trained staff present together (Q24.1(1))."""

    __tablename__ = "retrieval_sessions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("retrieval_requests.id", ondelete="RESTRICT"))
    user_a_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    user_b_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    opened_ms: Mapped[int] = mapped_column()
    expires_ms: Mapped[int] = mapped_column()
    closed_ms: Mapped[int | None] = mapped_column()
    closed_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_retrieval_sessions_users", "user_a_id", "user_b_id"),)


class RegisterEntry(Base):
    """One use of footage that reached the door, allowed or refused (Q19.1, Q24.1(3), N16.1):
    who (unit, names, work ID numbers of both staff), when, which camera and times, action,
    why (purpose), under which approval."""

    __tablename__ = "register_entries"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    at_ms: Mapped[int] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(8))  # allowed | refused
    action: Mapped[str] = mapped_column(String(16))
    camera_id: Mapped[int] = mapped_column()
    from_ms: Mapped[int | None] = mapped_column()
    to_ms: Mapped[int | None] = mapped_column()
    user_id: Mapped[int | None] = mapped_column()
    user_login: Mapped[str] = mapped_column(String(64), default="")
    user_name: Mapped[str] = mapped_column(String(200), default="")
    user_work_id: Mapped[str] = mapped_column(String(64), default="")
    unit_id: Mapped[int | None] = mapped_column()
    unit_name: Mapped[str] = mapped_column(String(200), default="")
    second_user_id: Mapped[int | None] = mapped_column()
    second_name: Mapped[str] = mapped_column(String(200), default="")
    second_work_id: Mapped[str] = mapped_column(String(64), default="")
    request_id: Mapped[int | None] = mapped_column()
    session_id: Mapped[int | None] = mapped_column()
    request_kind: Mapped[str] = mapped_column(String(16), default="")
    purpose: Mapped[str] = mapped_column(Text, default="")
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    case_number: Mapped[str] = mapped_column(String(100), default="")
    reason: Mapped[str] = mapped_column(Text, default="")  # the door's decision, in words
    articles: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (
        Index("ix_register_entries_camera", "camera_id", "at_ms"),
        Index("ix_register_entries_at", "at_ms"),
        Index("ix_register_entries_user", "user_id"),
        Index("ix_register_entries_request", "request_id"),
    )
