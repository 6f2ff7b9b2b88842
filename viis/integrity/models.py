"""Chain heads: the newest link of each camera's hash chain (committed to the audit log's
Merkle tree by the lawful-access issue)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from viis.core.db import Base


class ChainHead(Base):
    __tablename__ = "chain_heads"

    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"), primary_key=True)
    seq: Mapped[int] = mapped_column()
    chain_hash: Mapped[str] = mapped_column(String(64))
    updated_ms: Mapped[int] = mapped_column()
