"""gb_delivery: a retrieval request may name the GB/T 28181 upper platform its copy is
delivered to (Download INVITE, Q13.1 with Q23.1, Q24.1); merges the two 0008 heads

Revision ID: 0009_gb_delivery
Revises: 0008_gb_cascade, 0008_gb_devices
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_gb_delivery"
down_revision = ("0008_gb_cascade", "0008_gb_devices")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("retrieval_requests") as b:
        b.add_column(sa.Column("deliver_to", sa.String(20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("retrieval_requests") as b:
        b.drop_column("deliver_to")
