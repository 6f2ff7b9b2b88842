"""signage: photos of the sign announcing each camera (Q17.1, N13.1)

Revision ID: 0006_signage
Revises: 0005_merge
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_signage"
down_revision = "0005_merge"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "camera_signage_photos",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("camera_id", ID, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_ms", ID, nullable=False),
        sa.Column("uploaded_by", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"], ondelete="RESTRICT",
                                name=op.f("fk_camera_signage_photos_camera_id_cameras")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_camera_signage_photos")),
        sa.UniqueConstraint("camera_id", "sha256",
                            name=op.f("uq_camera_signage_photos_camera_id_sha256")),
    )


def downgrade() -> None:
    op.drop_table("camera_signage_photos")
