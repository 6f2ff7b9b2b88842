"""Tables of the compliance register (unit side) and of the police intake (bureau side).

Unit side: the installation's own using units, their sites, systems, the link of each camera
of ``viis/registry`` to a system (a link table, so the camera registry stays as it is), zones
near military or classified units with the consent documents (Q7.3, N10.1), changes of filed
facts detected by diffing the live state against the last filing, and the filings themselves
(Q16, N14.1) with the signed contents that were sent.

Bureau side: each unit's registered public key and every package received through the intake
API, stored once by the SHA-256 of its signed contents.

Stored instants are UTC milliseconds; legal days (acceptance, going into use, filing) are
Asia/Shanghai calendar dates (invariant 5).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from viis.core.db import Base


class ComplianceUnit(Base):
    """A using unit run on this installation (business or non-business use selects the
    Q27/Q30 fine ranges; party unit/individual the national ones)."""

    __tablename__ = "compliance_units"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)   # its id in snapshots and filings
    name: Mapped[str] = mapped_column(String(200))
    use: Mapped[str] = mapped_column(String(16))
    party: Mapped[str] = mapped_column(String(16))
    district: Mapped[str] = mapped_column(String(100), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str] = mapped_column(String(200), default="")
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"))
    created_ms: Mapped[int] = mapped_column()
    updated_ms: Mapped[int] = mapped_column()


class ComplianceSite(Base):
    """A place with its categories from the packs (Q7.1, N7.1, N9.1)."""

    __tablename__ = "compliance_sites"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("compliance_units.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text, default="")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    categories: Mapped[list[str]] = mapped_column(JSON)
    public_place: Mapped[bool] = mapped_column(Boolean, default=True)
    privacy_areas: Mapped[list[str]] = mapped_column(JSON)
    privacy_checked_on: Mapped[date | None] = mapped_column(Date)
    created_ms: Mapped[int] = mapped_column()
    updated_ms: Mapped[int] = mapped_column()


class ComplianceSystem(Base):
    """A video image information system at a site: who built and maintains it (Q14.1), its
    inspection report (Q15.1), acceptance and going-into-use days, purpose (Q20.1), storage."""

    __tablename__ = "compliance_systems"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("compliance_sites.id", ondelete="RESTRICT"))
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text)
    storage_days: Mapped[int] = mapped_column(Integer)
    contractors: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    inspection_report: Mapped[str] = mapped_column(String(200), default="")
    accepted_on: Mapped[date | None] = mapped_column(Date)
    in_use_on: Mapped[date | None] = mapped_column(Date)
    removed_on: Mapped[date | None] = mapped_column(Date)
    authorised: Mapped[bool] = mapped_column(Boolean, default=True)
    created_ms: Mapped[int] = mapped_column()
    updated_ms: Mapped[int] = mapped_column()


class CameraLink(Base):
    """Which system a camera of the registry belongs to, and the facts the law asks of it
    that the camera registry does not hold (position for zones, audio, installation day)."""

    __tablename__ = "compliance_camera_links"

    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"), primary_key=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("compliance_systems.id", ondelete="RESTRICT"))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    installed_on: Mapped[date | None] = mapped_column(Date)
    public_place: Mapped[bool | None] = mapped_column(Boolean)
    audio: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_ms: Mapped[int] = mapped_column()

    __table_args__ = (Index("ix_compliance_camera_links_system", "system_id"),)


class ComplianceZone(Base):
    """A military zone or the surroundings of a state organ / classified unit (Q7.3, N10.1)."""

    __tablename__ = "compliance_zones"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float)
    created_ms: Mapped[int] = mapped_column()


class ComplianceConsent(Base):
    """The zone's unit's prior consent (N10.1) or opinion (Q7.3) for one system."""

    __tablename__ = "compliance_consents"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    zone_id: Mapped[int] = mapped_column(ForeignKey("compliance_zones.id", ondelete="RESTRICT"))
    system_id: Mapped[int] = mapped_column(ForeignKey("compliance_systems.id", ondelete="RESTRICT"))
    document: Mapped[str] = mapped_column(String(200))
    # the document itself (PDF, JPEG or PNG), stored once by SHA-256 beside inspection photos
    document_sha256: Mapped[str | None] = mapped_column(
        ForeignKey("compliance_photos.sha256", ondelete="RESTRICT"))
    on_day: Mapped[date] = mapped_column(Date)
    recorded_by: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column()


class FiledChange(Base):
    """A filed fact that changed (N14.1), found by diffing the live state against the contents
    of the system's last filing; ``detected_on`` starts the change-filing deadline."""

    __tablename__ = "compliance_changes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("compliance_systems.id", ondelete="RESTRICT"))
    what: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    detected_on: Mapped[date] = mapped_column(Date)
    filing_id: Mapped[int | None] = mapped_column()   # the change filing that covered it
    created_ms: Mapped[int] = mapped_column()

    __table_args__ = (Index("ix_compliance_changes_system", "system_id", "filing_id"),)


class ComplianceFiling(Base):
    """A filing with the police (Q16, N14.1): draft → submitted → accepted (receipt) or refused.
    ``contents`` is what was generated from the live configuration; ``package`` the signed
    JSON document sent to the intake."""

    __tablename__ = "compliance_filings"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    system_id: Mapped[int] = mapped_column(ForeignKey("compliance_systems.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(String(32))
    pack: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16), default="")
    authority: Mapped[str] = mapped_column(String(64), default="")
    event_on: Mapped[date | None] = mapped_column(Date)
    due_on: Mapped[date | None] = mapped_column(Date)
    contents: Mapped[dict[str, Any]] = mapped_column(JSON)
    contents_sha256: Mapped[str] = mapped_column(String(64))
    package: Mapped[dict[str, Any]] = mapped_column(JSON)
    filed_on: Mapped[date | None] = mapped_column(Date)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    refusal: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column()
    updated_ms: Mapped[int] = mapped_column()

    __table_args__ = (Index("ix_compliance_filings_system", "system_id", "kind"),)


class IntakeKey(Base):
    """Bureau side: a unit's registered public key; packages it signs are accepted."""

    __tablename__ = "intake_unit_keys"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    unit_code: Mapped[str] = mapped_column(String(64), unique=True)
    unit_name: Mapped[str] = mapped_column(String(200))
    district: Mapped[str] = mapped_column(String(100), default="")
    public_pem: Mapped[str] = mapped_column(Text)
    key_id: Mapped[str] = mapped_column(String(32))
    registered_by: Mapped[str] = mapped_column(String(64))
    registered_ms: Mapped[int] = mapped_column()


class IntakeSnapshot(Base):
    """Bureau side: a unit's signed compliance snapshot (docs/compliance-snapshot.md), stored once
    by content hash; the newest per unit feeds the dashboard."""

    __tablename__ = "intake_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    content_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    unit_code: Mapped[str] = mapped_column(String(64))
    generated_ms: Mapped[int] = mapped_column()
    received_ms: Mapped[int] = mapped_column()
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_intake_snapshots_unit", "unit_code", "generated_ms"),)


class IntakeFiling(Base):
    """Bureau side: one received filing package, stored once by its content hash."""

    __tablename__ = "intake_filings"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    content_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    receipt_id: Mapped[str] = mapped_column(String(32), unique=True)
    unit_code: Mapped[str] = mapped_column(String(64))
    district: Mapped[str] = mapped_column(String(100), default="")
    system_code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    event_on: Mapped[date | None] = mapped_column(Date)
    due_on: Mapped[date | None] = mapped_column(Date)
    received_on: Mapped[date] = mapped_column(Date)
    received_ms: Mapped[int] = mapped_column()
    package: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (Index("ix_intake_filings_unit", "unit_code", "system_code"),)
