"""Identity tables: organisations, users, training records, sessions and API tokens.

Secrets at rest: passwords are argon2id hashes; session and API tokens are stored only as
SHA-256 of a 256-bit random value (a fast hash is enough for high-entropy tokens; a
stolen table does not give a usable token). The TOTP seed must be readable to check a
code; it is never returned by the API after enrolment and never logged.
"""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from viis.core.db import Base


class Organisation(Base):
    """A using unit, a maintenance contractor (Q21.1, N19.1), a city or district police
    bureau (Q23.1), or another government department (Q23.2)."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    # A district bureau's city bureau; a contractor's using unit (Q21.1 contract party).
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    created_ms: Mapped[int] = mapped_column()


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    # Work ID number, shown and registered at every retrieval (Q24.1(2), N16.1).
    work_id: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    password_changed_ms: Mapped[int] = mapped_column()
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    totp_last_step: Mapped[int | None] = mapped_column()  # a code is accepted once
    roles: Mapped[str] = mapped_column(String(500), default="")  # space separated
    clearance: Mapped[int] = mapped_column(Integer, default=1)  # 1..5 vs cameras.security_level
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until_ms: Mapped[int | None] = mapped_column()
    created_ms: Mapped[int] = mapped_column()
    updated_ms: Mapped[int] = mapped_column()


class TrainingRecord(Base):
    """Skills or confidentiality training of a staff member (Q19.2, N16.1)."""

    __tablename__ = "training_records"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    topic: Mapped[str] = mapped_column(String(32))  # skills | confidentiality
    course: Mapped[str] = mapped_column(String(200))
    completed_ms: Mapped[int] = mapped_column()
    valid_until_ms: Mapped[int] = mapped_column()
    recorded_by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    created_ms: Mapped[int] = mapped_column()

    __table_args__ = (Index("ix_training_records_user", "user_id", "topic"),)


class AuthSession(Base):
    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_ms: Mapped[int] = mapped_column()
    expires_ms: Mapped[int] = mapped_column()  # absolute end
    last_seen_ms: Mapped[int] = mapped_column()  # idle timeout counts from here
    revoked_ms: Mapped[int | None] = mapped_column()


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_ms: Mapped[int] = mapped_column()
    expires_ms: Mapped[int | None] = mapped_column()
    last_used_ms: Mapped[int | None] = mapped_column()
    revoked_ms: Mapped[int | None] = mapped_column()
