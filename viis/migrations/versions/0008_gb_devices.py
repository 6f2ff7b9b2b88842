"""gb_devices: GB/T 28181 devices and lower platforms registered to us, and their catalog
channels (platform role, Q13.2)

Revision ID: 0008_gb_devices
Revises: 0007_duty
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_gb_devices"
down_revision = "0007_duty"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    t = "gb_devices"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("manufacturer", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("firmware", sa.String(200), nullable=False),
        sa.Column("transport", sa.String(8), nullable=False),
        sa.Column("host", sa.String(64), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("contact", sa.String(500), nullable=False),
        sa.Column("registered", sa.Boolean(), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("registered_ms", ID, nullable=True),
        sa.Column("expires_ms", ID, nullable=True),
        sa.Column("last_keepalive_ms", ID, nullable=True),
        sa.Column("status_ms", ID, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("charset", sa.String(16), nullable=False),
        sa.Column("catalog_ms", ID, nullable=True),
        sa.Column("channel_count", sa.Integer(), nullable=False),
        sa.Column("created_ms", ID, nullable=False),
        sa.Column("updated_ms", ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gb_devices")),
        sa.UniqueConstraint("device_id", name=op.f("uq_gb_devices_device_id")),
    )
    t = "gb_channels"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("device_pk", ID, nullable=False),
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ptz_type", sa.Integer(), nullable=True),
        sa.Column("info", sa.Text(), nullable=False),
        sa.Column("camera_id", ID, nullable=True),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("updated_ms", ID, nullable=False),
        sa.ForeignKeyConstraint(["device_pk"], ["gb_devices.id"], ondelete="RESTRICT",
                                name=op.f("fk_gb_channels_device_pk_gb_devices")),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"], ondelete="RESTRICT",
                                name=op.f("fk_gb_channels_camera_id_cameras")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gb_channels")),
        sa.UniqueConstraint("device_pk", "channel_id",
                            name=op.f("uq_gb_channels_device_pk_channel_id")),
    )


def downgrade() -> None:
    op.drop_table("gb_channels")
    op.drop_table("gb_devices")
