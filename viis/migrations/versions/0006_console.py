"""console: per-user settings of the web console (language, saved live wall)

Revision ID: 0006_console
Revises: 0005_merge
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_console"
down_revision = "0005_merge"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    t = "user_settings"
    op.create_table(
        t,
        sa.Column("user_id", ID, nullable=False),
        sa.Column("lang", sa.String(16), nullable=True),
        sa.Column("wall", sa.Text(), nullable=True),
        sa.Column("updated_ms", ID, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f(f"fk_{t}_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", name=op.f(f"pk_{t}")),
    )


def downgrade() -> None:
    op.drop_table("user_settings")
