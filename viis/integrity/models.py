"""Chain heads: the newest link of each camera's hash chain (committed to the audit log's
Merkle tree by the lawful-access issue). The audit log: its entries (the leaves), its state
(the tree's size, root and frontier) and its signed checkpoints (:mod:`viis.integrity.audit`)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from viis.core.db import Base


class ChainHead(Base):
    __tablename__ = "chain_heads"

    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="RESTRICT"), primary_key=True)
    seq: Mapped[int] = mapped_column()
    chain_hash: Mapped[str] = mapped_column(String(64))
    updated_ms: Mapped[int] = mapped_column()


class AuditEntry(Base):
    """One leaf of the audit log. ``seq`` is its 1-based position in the tree; ``leaf_hash``
    is SHA-256(0x00 || canonical form) as written, for pinpointing a changed row."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_kind_time", "kind", "at_ms"),
        Index("ix_audit_entries_actor_time", "actor", "at_ms"),
        Index("ix_audit_entries_time", "at_ms"),
    )

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at_ms: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(400))
    details: Mapped[str] = mapped_column(Text)  # canonical JSON, verbatim in the leaf
    leaf_hash: Mapped[str] = mapped_column(String(64))


class AuditState(Base):
    """The single row (id 1) every append locks: tree size, root and frontier."""

    __tablename__ = "audit_state"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column()
    root_hash: Mapped[str] = mapped_column(String(64))
    frontier: Mapped[str] = mapped_column(Text)  # JSON list of hex hashes, largest subtree first
    version: Mapped[int] = mapped_column()
    updated_ms: Mapped[int] = mapped_column()


class AuditCheckpoint(Base):
    """A signed tree head: (size, root, time) signed with the installation's "audit" key."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    tree_size: Mapped[int] = mapped_column(index=True)
    root_hash: Mapped[str] = mapped_column(String(64))
    at_ms: Mapped[int] = mapped_column()
    algorithm: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)
