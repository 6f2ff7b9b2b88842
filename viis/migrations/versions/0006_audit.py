"""audit: the append-only Merkle audit log (RFC 6962), its state row and signed checkpoints

Revision ID: 0006_audit
Revises: 0005_merge
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0006_audit"
down_revision = "0005_merge"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
EMPTY_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # SHA-256("")


def upgrade() -> None:
    t = "audit_entries"
    op.create_table(
        t,
        sa.Column("seq", ID, autoincrement=False, nullable=False),
        sa.Column("at_ms", ID, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(400), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_audit_entries_kind_time", t, ["kind", "at_ms"])
    op.create_index("ix_audit_entries_actor_time", t, ["actor", "at_ms"])
    op.create_index("ix_audit_entries_time", t, ["at_ms"])
    t = "audit_state"
    state = op.create_table(
        t,
        sa.Column("id", ID, autoincrement=False, nullable=False),
        sa.Column("size", ID, nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.Column("version", ID, nullable=False),
        sa.Column("updated_ms", ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
    )
    op.bulk_insert(state, [{"id": 1, "size": 0, "root_hash": EMPTY_ROOT,
                            "frontier": json.dumps([]), "version": 0, "updated_ms": 0}])
    t = "audit_checkpoints"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("tree_size", ID, nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("at_ms", ID, nullable=False),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_audit_checkpoints_tree_size", t, ["tree_size"])


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_state")
    op.drop_table("audit_entries")
