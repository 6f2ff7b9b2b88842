"""retrieval: requests, ranges, two-person sessions, the register

Revision ID: 0004_retrieval
Revises: 0003_identity
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_retrieval"
down_revision = "0003_identity"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, col: str, ref: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([col], [f"{ref}.id"], name=op.f(f"fk_{table}_{col}_{ref}"),
                                   ondelete="RESTRICT")


def upgrade() -> None:
    t = "retrieval_requests"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requester_id", ID, nullable=False),
        sa.Column("requesting_org_id", ID, nullable=False),
        sa.Column("approving_org_id", ID, nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("case_number", sa.String(100), nullable=False),
        sa.Column("person_name", sa.String(200), nullable=False),
        sa.Column("person_relation", sa.String(32), nullable=False),
        sa.Column("staff_work_ids", sa.String(500), nullable=False),
        sa.Column("actions", sa.String(100), nullable=False),
        sa.Column("requested_until_ms", ID, nullable=False),
        sa.Column("expires_ms", ID, nullable=True),
        sa.Column("document_sha256", sa.String(64), nullable=True),
        sa.Column("document_type", sa.String(16), nullable=True),
        sa.Column("document_bytes", ID, nullable=True),
        sa.Column("document_name", sa.String(200), nullable=True),
        sa.Column("review_pending", sa.Boolean(), nullable=False),
        sa.Column("decided_by_id", ID, nullable=True),
        sa.Column("decided_ms", ID, nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=False),
        sa.Column("closed_ms", ID, nullable=True),
        sa.Column("closed_by", sa.String(200), nullable=True),
        sa.Column("created_ms", ID, nullable=False),
        _fk(t, "requester_id", "users"),
        _fk(t, "requesting_org_id", "organisations"),
        _fk(t, "approving_org_id", "organisations"),
        _fk(t, "decided_by_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
    )
    t = "retrieval_ranges"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("request_id", ID, nullable=False),
        sa.Column("camera_id", ID, nullable=False),
        sa.Column("from_ms", ID, nullable=False),
        sa.Column("to_ms", ID, nullable=False),
        sa.Column("hold_id", ID, nullable=True),
        _fk(t, "request_id", "retrieval_requests"),
        _fk(t, "camera_id", "cameras"),
        _fk(t, "hold_id", "holds"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_retrieval_ranges_request", t, ["request_id"])
    t = "retrieval_sessions"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("request_id", ID, nullable=False),
        sa.Column("user_a_id", ID, nullable=False),
        sa.Column("user_b_id", ID, nullable=False),
        sa.Column("opened_ms", ID, nullable=False),
        sa.Column("expires_ms", ID, nullable=False),
        sa.Column("closed_ms", ID, nullable=True),
        sa.Column("closed_by", sa.String(200), nullable=True),
        _fk(t, "request_id", "retrieval_requests"),
        _fk(t, "user_a_id", "users"),
        _fk(t, "user_b_id", "users"),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_retrieval_sessions_users", t, ["user_a_id", "user_b_id"])
    t = "register_entries"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("at_ms", ID, nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("camera_id", ID, nullable=False),
        sa.Column("from_ms", ID, nullable=True),
        sa.Column("to_ms", ID, nullable=True),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("user_login", sa.String(64), nullable=False),
        sa.Column("user_name", sa.String(200), nullable=False),
        sa.Column("user_work_id", sa.String(64), nullable=False),
        sa.Column("unit_id", ID, nullable=True),
        sa.Column("unit_name", sa.String(200), nullable=False),
        sa.Column("second_user_id", ID, nullable=True),
        sa.Column("second_name", sa.String(200), nullable=False),
        sa.Column("second_work_id", sa.String(64), nullable=False),
        sa.Column("request_id", ID, nullable=True),
        sa.Column("session_id", ID, nullable=True),
        sa.Column("request_kind", sa.String(16), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.Text(), nullable=False),
        sa.Column("case_number", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("articles", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t}")),
    )
    op.create_index("ix_register_entries_camera", t, ["camera_id", "at_ms"])
    op.create_index("ix_register_entries_at", t, ["at_ms"])
    op.create_index("ix_register_entries_user", t, ["user_id"])
    op.create_index("ix_register_entries_request", t, ["request_id"])


def downgrade() -> None:
    for ix in ("ix_register_entries_request", "ix_register_entries_user", "ix_register_entries_at",
               "ix_register_entries_camera"):
        op.drop_index(ix, table_name="register_entries")
    op.drop_table("register_entries")
    op.drop_index("ix_retrieval_sessions_users", table_name="retrieval_sessions")
    op.drop_table("retrieval_sessions")
    op.drop_index("ix_retrieval_ranges_request", table_name="retrieval_ranges")
    op.drop_table("retrieval_ranges")
    op.drop_table("retrieval_requests")
