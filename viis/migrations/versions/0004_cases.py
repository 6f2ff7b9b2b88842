"""cases: compliance cases and their events, inspections and items, photos, public tips

Revision ID: 0004_cases
Revises: 0003_identity
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_cases"
down_revision = "0003_identity"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "compliance_photos",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("media_type", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("stored_ms", ID, nullable=False),
        sa.Column("stored_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_compliance_photos")),
    )
    op.create_table(
        "compliance_inspections",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("organisation_name", sa.String(200), nullable=False),
        sa.Column("use", sa.String(16), nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("site", sa.String(200), nullable=False),
        sa.Column("site_categories", sa.JSON(), nullable=False),
        sa.Column("on_day", sa.Date(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("inspector", sa.String(64), nullable=False),
        sa.Column("tip_id", ID, nullable=True),
        sa.Column("created_ms", ID, nullable=False),
        sa.Column("completed_ms", ID, nullable=True),
        sa.Column("completed_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_inspections")),
    )
    op.create_table(
        "compliance_inspection_items",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("inspection_id", ID, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("requirement", sa.String(16), nullable=False),
        sa.Column("pack", sa.String(64), nullable=False),
        sa.Column("article", sa.String(32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("photo_sha256", sa.String(64), nullable=True),
        sa.Column("recorded_by", sa.String(64), nullable=True),
        sa.Column("recorded_ms", ID, nullable=True),
        sa.ForeignKeyConstraint(["inspection_id"], ["compliance_inspections.id"],
                                name=op.f("fk_compliance_inspection_items_inspection_id_compliance_inspections"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["photo_sha256"], ["compliance_photos.sha256"],
                                name=op.f("fk_compliance_inspection_items_photo_sha256_compliance_photos"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_inspection_items")),
    )
    op.create_index("ix_compliance_inspection_items_inspection", "compliance_inspection_items",
                    ["inspection_id", "seq"], unique=True)
    op.create_table(
        "compliance_cases",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("finding_id", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("inspection_id", ID, nullable=True),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("organisation_name", sa.String(200), nullable=False),
        sa.Column("use", sa.String(16), nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("check", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("requirements", sa.JSON(), nullable=False),
        sa.Column("citations", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("detected_on", sa.Date(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("rectify_by", sa.Date(), nullable=True),
        sa.Column("order_ref", sa.String(100), nullable=True),
        sa.Column("penalty", sa.String(16), nullable=True),
        sa.Column("penalty_article", sa.String(32), nullable=True),
        sa.Column("penalty_pack", sa.String(64), nullable=True),
        sa.Column("fine_party", sa.String(32), nullable=True),
        sa.Column("amount", sa.Integer(), nullable=True),
        sa.Column("fine_min", sa.Integer(), nullable=True),
        sa.Column("fine_max", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(8), nullable=True),
        sa.Column("decision_ref", sa.String(100), nullable=True),
        sa.Column("served_on", sa.Date(), nullable=True),
        sa.Column("appeal", sa.JSON(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("created_ms", ID, nullable=False),
        sa.Column("updated_ms", ID, nullable=False),
        sa.ForeignKeyConstraint(["inspection_id"], ["compliance_inspections.id"],
                                name=op.f("fk_compliance_cases_inspection_id_compliance_inspections"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_cases")),
    )
    op.create_index("ix_compliance_cases_finding", "compliance_cases", ["finding_id"])
    op.create_index("ix_compliance_cases_state", "compliance_cases", ["state"])
    op.create_table(
        "compliance_case_events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("case_id", ID, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("at_ms", ID, nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["compliance_cases.id"],
                                name=op.f("fk_compliance_case_events_case_id_compliance_cases"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_case_events")),
    )
    op.create_index("ix_compliance_case_events_case", "compliance_case_events", ["case_id", "id"])
    op.create_table(
        "compliance_tips",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("received_ms", ID, nullable=False),
        sa.Column("location", sa.String(500), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=True),
        sa.Column("longitude", sa.Float(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(200), nullable=False),
        sa.Column("photo_sha256", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("triaged_by", sa.String(64), nullable=True),
        sa.Column("triaged_ms", ID, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("inspection_id", ID, nullable=True),
        sa.ForeignKeyConstraint(["photo_sha256"], ["compliance_photos.sha256"],
                                name=op.f("fk_compliance_tips_photo_sha256_compliance_photos"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_tips")),
    )
    op.create_index("ix_compliance_tips_state", "compliance_tips", ["state"])


def downgrade() -> None:
    op.drop_index("ix_compliance_tips_state", table_name="compliance_tips")
    op.drop_table("compliance_tips")
    op.drop_index("ix_compliance_case_events_case", table_name="compliance_case_events")
    op.drop_table("compliance_case_events")
    op.drop_index("ix_compliance_cases_state", table_name="compliance_cases")
    op.drop_index("ix_compliance_cases_finding", table_name="compliance_cases")
    op.drop_table("compliance_cases")
    op.drop_index("ix_compliance_inspection_items_inspection", table_name="compliance_inspection_items")
    op.drop_table("compliance_inspection_items")
    op.drop_table("compliance_inspections")
    op.drop_table("compliance_photos")
