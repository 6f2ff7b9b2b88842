"""fault_tickets: faults as work, with repair deadlines and emergency measures (Q19.3)

Revision ID: 0003_health
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_health"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "fault_tickets",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("fault_id", ID, nullable=True),
        sa.Column("camera_id", ID, nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("evidence_path", sa.String(length=1024), nullable=True),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=True),
        sa.Column("first_seen_ms", ID, nullable=False),
        sa.Column("notified_ms", ID, nullable=True),
        sa.Column("repair_due_ms", ID, nullable=False),
        sa.Column("repair_limit", sa.String(length=200), nullable=False),
        sa.Column("acked_ms", ID, nullable=True),
        sa.Column("acked_by", sa.String(length=200), nullable=True),
        sa.Column("repaired_ms", ID, nullable=True),
        sa.Column("repaired_by", sa.String(length=200), nullable=True),
        sa.Column("repair_note", sa.Text(), nullable=True),
        sa.Column("emergency_ms", ID, nullable=True),
        sa.Column("emergency_by", sa.String(length=200), nullable=True),
        sa.Column("emergency_measure", sa.Text(), nullable=True),
        sa.Column("overdue", sa.Boolean(), nullable=False),
        sa.Column("overdue_ms", ID, nullable=True),
        sa.Column("cleared_ms", ID, nullable=True),
        sa.Column("recurrences", sa.Integer(), nullable=False),
        sa.Column("closed_ms", ID, nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["fault_id"], ["faults.id"],
                                name=op.f("fk_fault_tickets_fault_id_faults"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"],
                                name=op.f("fk_fault_tickets_camera_id_cameras"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fault_tickets")),
    )
    op.create_index("ix_fault_tickets_camera_kind", "fault_tickets", ["camera_id", "kind"])
    op.create_index("ix_fault_tickets_closed_ms", "fault_tickets", ["closed_ms"])


def downgrade() -> None:
    op.drop_index("ix_fault_tickets_closed_ms", table_name="fault_tickets")
    op.drop_index("ix_fault_tickets_camera_kind", table_name="fault_tickets")
    op.drop_table("fault_tickets")
