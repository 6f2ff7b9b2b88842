"""recorder_runs.crashed: a run found unstopped by the next start

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recorder_runs") as b:
        b.add_column(sa.Column("crashed", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("recorder_runs") as b:
        b.drop_column("crashed")
