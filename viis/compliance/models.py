"""Tables of the police side: cases, their history, inspections with their checklist items,
photos and public tips (Q25.1, Q26–Q32, N24.1).

A case copies what it was opened from (the finding's requirement ids, its citations with the
fine ranges for the unit's use and party, its evidence), so a later change of the rule packs
or of the unit's registry does not change what the case was about. Every state change is a
row of ``compliance_case_events`` (who, when, from, to). Times are UTC milliseconds; legal
days (deadlines, service, appeals) are Asia/Shanghai calendar dates (invariant 5).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import JSON, Date, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from viis.core.db import Base


class CompliancePhoto(Base):
    """An uploaded picture (inspection evidence, a tip), content-addressed by SHA-256."""

    __tablename__ = "compliance_photos"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    stored_ms: Mapped[int] = mapped_column()
    stored_by: Mapped[str] = mapped_column(String(64))


class Inspection(Base):
    """A police inspection of one site of a using unit (Q25.1, N24.1)."""

    __tablename__ = "compliance_inspections"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    organisation: Mapped[str] = mapped_column(String(200))     # the unit's id in its snapshot
    organisation_name: Mapped[str] = mapped_column(String(200))
    use: Mapped[str] = mapped_column(String(16))               # business | non_business
    party: Mapped[str] = mapped_column(String(16))             # unit | individual
    site: Mapped[str] = mapped_column(String(200))
    site_categories: Mapped[list[str]] = mapped_column(JSON)   # "pack:category"
    on_day: Mapped[date] = mapped_column(Date)                 # the day the packs are taken from
    state: Mapped[str] = mapped_column(String(16))             # open | completed
    inspector: Mapped[str] = mapped_column(String(64))
    tip_id: Mapped[int | None] = mapped_column()
    created_ms: Mapped[int] = mapped_column()
    completed_ms: Mapped[int | None] = mapped_column()
    completed_by: Mapped[str | None] = mapped_column(String(64))


class InspectionItem(Base):
    """One duty requirement to check; ``result`` pending | pass | fail | not_applicable."""

    __tablename__ = "compliance_inspection_items"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    inspection_id: Mapped[int] = mapped_column(
        ForeignKey("compliance_inspections.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    requirement: Mapped[str] = mapped_column(String(16))
    pack: Mapped[str] = mapped_column(String(64))
    article: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text)
    result: Mapped[str] = mapped_column(String(16), default="pending")
    note: Mapped[str] = mapped_column(Text, default="")
    photo_sha256: Mapped[str | None] = mapped_column(
        ForeignKey("compliance_photos.sha256", ondelete="RESTRICT"))
    recorded_by: Mapped[str | None] = mapped_column(String(64))
    recorded_ms: Mapped[int | None] = mapped_column()

    __table_args__ = (Index("ix_compliance_inspection_items_inspection", "inspection_id", "seq",
                            unique=True),)


class ComplianceCase(Base):
    """A finding taken up by the police: order → re-inspection → closed or decided → appeal."""

    __tablename__ = "compliance_cases"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    finding_id: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))            # engine | inspection
    inspection_id: Mapped[int | None] = mapped_column(
        ForeignKey("compliance_inspections.id", ondelete="RESTRICT"))
    organisation: Mapped[str] = mapped_column(String(200))
    organisation_name: Mapped[str] = mapped_column(String(200))
    use: Mapped[str] = mapped_column(String(16))
    party: Mapped[str] = mapped_column(String(16))
    check: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(200))
    requirements: Mapped[list[str]] = mapped_column(JSON)
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON)   # Citation.as_dict()
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    explanation: Mapped[str] = mapped_column(Text)
    detected_on: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16))
    # order to rectify (责令限期改正)
    rectify_by: Mapped[date | None] = mapped_column(Date)
    order_ref: Mapped[str | None] = mapped_column(String(100))
    # penalty decision (a person chooses the amount inside the cited range)
    penalty: Mapped[str | None] = mapped_column(String(16))
    penalty_article: Mapped[str | None] = mapped_column(String(32))
    penalty_pack: Mapped[str | None] = mapped_column(String(64))
    fine_party: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[int | None] = mapped_column(Integer)
    fine_min: Mapped[int | None] = mapped_column(Integer)
    fine_max: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str | None] = mapped_column(String(8))
    decision_ref: Mapped[str | None] = mapped_column(String(100))
    served_on: Mapped[date | None] = mapped_column(Date)
    appeal: Mapped[dict[str, Any] | None] = mapped_column(JSON)     # deadlines and filings (Q32)
    outcome: Mapped[str | None] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column()
    updated_ms: Mapped[int] = mapped_column()

    __table_args__ = (Index("ix_compliance_cases_finding", "finding_id"),
                      Index("ix_compliance_cases_state", "state"))


class CaseEvent(Base):
    """One state change of a case: who, when, from which state to which, and the details."""

    __tablename__ = "compliance_case_events"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("compliance_cases.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    at_ms: Mapped[int] = mapped_column()
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_compliance_case_events_case", "case_id", "id"),)


class Tip(Base):
    """A public report of an unlawful installation (N24.1); triaged by a bureau user."""

    __tablename__ = "compliance_tips"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    received_ms: Mapped[int] = mapped_column()
    location: Mapped[str] = mapped_column(String(500))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str] = mapped_column(Text)
    contact: Mapped[str] = mapped_column(String(200), default="")
    photo_sha256: Mapped[str | None] = mapped_column(
        ForeignKey("compliance_photos.sha256", ondelete="RESTRICT"))
    state: Mapped[str] = mapped_column(String(16))             # new | inspection | dismissed
    triaged_by: Mapped[str | None] = mapped_column(String(64))
    triaged_ms: Mapped[int | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    inspection_id: Mapped[int | None] = mapped_column()

    __table_args__ = (Index("ix_compliance_tips_state", "state"),)


# The register and filings live beside the police-side tables; importing them here puts them
# in Base.metadata wherever the compliance tables are.
import viis.compliance.registry_models  # noqa: E402, F401
