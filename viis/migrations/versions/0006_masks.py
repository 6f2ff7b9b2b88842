"""masks: privacy masks per camera and their two-person, time-limited lifting (Q9.2, N13.1)

Revision ID: 0006_masks
Revises: 0005_merge
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_masks"
down_revision = "0005_merge"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, col: str, ref: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([col], [f"{ref}.id"], name=op.f(f"fk_{table}_{col}_{ref}"),
                                   ondelete="RESTRICT")


def upgrade() -> None:
    t = "privacy_masks"
    op.create_table(
        t,
        sa.Column("camera_id", ID, nullable=False),
        sa.Column("masks", sa.Text(), nullable=False),
        sa.Column("updated_ms", ID, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        _fk(t, "camera_id", "cameras"),
        sa.PrimaryKeyConstraint("camera_id", name=op.f(f"pk_{t}")),
    )
    t = "mask_lifts"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("request_id", ID, nullable=False),
        sa.Column("camera_id", ID, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("asked_by_id", ID, nullable=False),
        sa.Column("asked_ms", ID, nullable=False),
        sa.Column("decided_by_id", ID, nullable=True),
        sa.Column("decided_ms", ID, nullable=True),
        sa.Column("expires_ms", ID, nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        _fk(t, "request_id", "retrieval_requests"),
        _fk(t, "camera_id", "cameras"),
        _fk(t, "asked_by_id", "users"),
        _fk(t, "decided_by_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_mask_lifts_request", t, ["request_id", "camera_id"])


def downgrade() -> None:
    op.drop_index("ix_mask_lifts_request", table_name="mask_lifts")
    op.drop_table("mask_lifts")
    op.drop_table("privacy_masks")
