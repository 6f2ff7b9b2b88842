"""Tables of the lower-platform role (cascade up): the upper platforms VIIS registers to and,
per upper platform, which cameras it shares under which channel IDs (Q13.1: interfaces to
the sharing, police image and emergency command platforms, level by level, with
permissions by security level).

The upper's password is kept in clear because the digest answer needs it (as the camera
passwords are); it is never logged nor returned by the API (see
:func:`viis.interconnect.gb28181.cascade_store.public_view`).
"""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from viis.core.db import Base


class GbUpperPlatform(Base):
    __tablename__ = "gb_upper_platforms"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    server_id: Mapped[str] = mapped_column(String(20), unique=True)  # the upper's SIP ID
    domain: Mapped[str] = mapped_column(String(20))  # its SIP domain (realm), 10 digits usually
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    transport: Mapped[str] = mapped_column(String(3))  # UDP | TCP
    password: Mapped[str] = mapped_column(String(200))  # secret: never logged or returned
    charset: Mapped[str] = mapped_column(String(16))  # GB2312 | GBK | GB18030 | UTF-8
    keepalive_s: Mapped[int] = mapped_column(Integer)
    keepalive_misses: Mapped[int] = mapped_column(Integer)
    register_expires: Mapped[int] = mapped_column(Integer)
    local_id: Mapped[str] = mapped_column(String(20))  # our platform ID towards this upper
    max_security_level: Mapped[int] = mapped_column(Integer)  # cameras above: never shared
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_ms: Mapped[int] = mapped_column()
    updated_ms: Mapped[int] = mapped_column()


class GbShare(Base):
    """One camera shared with one upper platform under one channel ID (Q13.1)."""

    __tablename__ = "gb_shares"
    __table_args__ = (UniqueConstraint("upper_id", "camera_id"),
                      UniqueConstraint("upper_id", "channel_id"))

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    upper_id: Mapped[int] = mapped_column(ForeignKey("gb_upper_platforms.id", ondelete="RESTRICT"))
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"))
    channel_id: Mapped[str] = mapped_column(String(20))
    ptz_allowed: Mapped[bool] = mapped_column(Boolean)
    created_ms: Mapped[int] = mapped_column()
