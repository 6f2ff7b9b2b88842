"""Registry tables: cameras and their signage photos (the compliance issue adds organisations,
sites and systems)."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from viis.core.db import Base


class Camera(Base):
    __tablename__ = "cameras"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    main_url: Mapped[str] = mapped_column(String(2000))
    sub_url: Mapped[str | None] = mapped_column(String(2000))
    # Secrets: never logged, never returned by the API (see registry.service.public_view).
    username: Mapped[str | None] = mapped_column(String(200))
    password: Mapped[str | None] = mapped_column(String(200))
    site: Mapped[str] = mapped_column(String(200), default="")
    location_type: Mapped[str] = mapped_column(String(64), default="public_area")
    security_level: Mapped[int] = mapped_column(Integer, default=1)
    retention_days: Mapped[int] = mapped_column(Integer)
    # Keeping footage past the rule packs' default maximum needs a legal basis (N17.1).
    retention_basis: Mapped[str] = mapped_column(String(500), default="")
    # Lower priority streams are stopped first when the disk fills (invariant 1).
    priority: Mapped[int] = mapped_column(Integer, default=50)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_ms: Mapped[int] = mapped_column()
    updated_ms: Mapped[int] = mapped_column()


class SignagePhoto(Base):
    """A photo of the sign that tells the public a camera is there (Q17.1, N13.1).

    The picture is kept once per camera under its SHA-256; the newest row is the camera's
    current signage evidence, older rows stay as its history.
    """

    __tablename__ = "camera_signage_photos"
    __table_args__ = (UniqueConstraint("camera_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_ms: Mapped[int] = mapped_column()
    uploaded_by: Mapped[str] = mapped_column(String(200))
