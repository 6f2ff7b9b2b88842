"""merge the health, retrieval and cases branches into one line

Revision ID: 0005_merge
Revises: 0003_health, 0004_retrieval, 0004_cases
"""

revision = "0005_merge"
down_revision = ("0003_health", "0004_retrieval", "0004_cases")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
