"""gb_cascade: upper platforms of the GB/T 28181 lower-platform role and their share lists
(Q13.1, Q12.1, N12.1)

Revision ID: 0008_gb_cascade
Revises: 0007_duty
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_gb_cascade"
down_revision = "0007_duty"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    t = "gb_upper_platforms"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("server_id", sa.String(20), nullable=False),
        sa.Column("domain", sa.String(20), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(3), nullable=False),
        sa.Column("password", sa.String(200), nullable=False),
        sa.Column("charset", sa.String(16), nullable=False),
        sa.Column("keepalive_s", sa.Integer(), nullable=False),
        sa.Column("keepalive_misses", sa.Integer(), nullable=False),
        sa.Column("register_expires", sa.Integer(), nullable=False),
        sa.Column("local_id", sa.String(20), nullable=False),
        sa.Column("max_security_level", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_ms", ID, nullable=False),
        sa.Column("updated_ms", ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
        sa.UniqueConstraint("server_id", name=op.f(f"uq_{t}_server_id")),
    )
    t = "gb_shares"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("upper_id", ID, nullable=False),
        sa.Column("camera_id", ID, nullable=False),
        sa.Column("channel_id", sa.String(20), nullable=False),
        sa.Column("ptz_allowed", sa.Boolean(), nullable=False),
        sa.Column("created_ms", ID, nullable=False),
        sa.ForeignKeyConstraint(["upper_id"], ["gb_upper_platforms.id"],
                                name=op.f(f"fk_{t}_upper_id_gb_upper_platforms"),
                                ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"],
                                name=op.f(f"fk_{t}_camera_id_cameras"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
        sa.UniqueConstraint("upper_id", "camera_id", name=op.f(f"uq_{t}_upper_id_camera_id")),
        sa.UniqueConstraint("upper_id", "channel_id", name=op.f(f"uq_{t}_upper_id_channel_id")),
    )


def downgrade() -> None:
    op.drop_table("gb_shares")
    op.drop_table("gb_upper_platforms")
