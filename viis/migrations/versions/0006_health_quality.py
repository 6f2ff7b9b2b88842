"""clock_readings: each camera's measured clock offset per source, stored per camera and
interval (Q19.3 accurate time; invariant 5: measured, stored and alarmed)

Revision ID: 0006_health_quality
Revises: 0005_merge
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_health_quality"
down_revision = "0005_merge"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "clock_readings",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("camera_id", ID, nullable=False),
        sa.Column("at_ms", ID, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("offset_ms", ID, nullable=False),
        sa.Column("epoch_reset", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"],
                                name=op.f("fk_clock_readings_camera_id_cameras"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clock_readings")),
    )
    op.create_index("ix_clock_readings_camera_time", "clock_readings", ["camera_id", "at_ms"])


def downgrade() -> None:
    op.drop_index("ix_clock_readings_camera_time", table_name="clock_readings")
    op.drop_table("clock_readings")
