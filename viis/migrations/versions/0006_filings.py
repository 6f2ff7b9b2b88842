"""filings: the compliance register (units, sites, systems, camera links, zones, consents),
detected changes of filed facts, filings (Q16, N14.1) and the police intake (keys, packages)

Revision ID: 0006_filings
Revises: 0005_merge
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_filings"
down_revision = "0005_merge"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

TABLES = ["compliance_units", "compliance_sites", "compliance_systems", "compliance_camera_links",
          "compliance_zones", "compliance_consents", "compliance_changes", "compliance_filings",
          "intake_unit_keys", "intake_filings", "intake_snapshots"]


def upgrade() -> None:
    op.create_table(
        "compliance_units",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("use", sa.String(16), nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("district", sa.String(100), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(200), nullable=False),
        sa.Column("organisation_id", ID, nullable=True),
        sa.Column("created_ms", ID, nullable=False),
        sa.Column("updated_ms", ID, nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name=op.f("fk_compliance_units_organisation_id_organisations"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_units")),
        sa.UniqueConstraint("code", name=op.f("uq_compliance_units_code")),
    )
    op.create_table(
        "compliance_sites",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("unit_id", ID, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("public_place", sa.Boolean(), nullable=False),
        sa.Column("privacy_areas", sa.JSON(), nullable=False),
        sa.Column("privacy_checked_on", sa.Date(), nullable=True),
        sa.Column("created_ms", ID, nullable=False),
        sa.Column("updated_ms", ID, nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["compliance_units.id"],
                                name=op.f("fk_compliance_sites_unit_id_compliance_units"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_sites")),
        sa.UniqueConstraint("code", name=op.f("uq_compliance_sites_code")),
    )
    op.create_table(
        "compliance_systems",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("storage_days", sa.Integer(), nullable=False),
        sa.Column("contractors", sa.JSON(), nullable=False),
        sa.Column("inspection_report", sa.String(200), nullable=False),
        sa.Column("accepted_on", sa.Date(), nullable=True),
        sa.Column("in_use_on", sa.Date(), nullable=True),
        sa.Column("removed_on", sa.Date(), nullable=True),
        sa.Column("authorised", sa.Boolean(), nullable=False),
        sa.Column("created_ms", ID, nullable=False),
        sa.Column("updated_ms", ID, nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["compliance_sites.id"],
                                name=op.f("fk_compliance_systems_site_id_compliance_sites"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_systems")),
        sa.UniqueConstraint("code", name=op.f("uq_compliance_systems_code")),
    )
    op.create_table(
        "compliance_camera_links",
        sa.Column("camera_id", ID, nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("installed_on", sa.Date(), nullable=True),
        sa.Column("public_place", sa.Boolean(), nullable=True),
        sa.Column("audio", sa.Boolean(), nullable=False),
        sa.Column("updated_ms", ID, nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"],
                                name=op.f("fk_compliance_camera_links_camera_id_cameras"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["system_id"], ["compliance_systems.id"],
                                name=op.f("fk_compliance_camera_links_system_id_compliance_systems"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("camera_id", name=op.f("pk_compliance_camera_links")),
    )
    op.create_index("ix_compliance_camera_links_system", "compliance_camera_links", ["system_id"], unique=False)
    op.create_table(
        "compliance_zones",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("radius_m", sa.Float(), nullable=False),
        sa.Column("created_ms", ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_zones")),
        sa.UniqueConstraint("code", name=op.f("uq_compliance_zones_code")),
    )
    op.create_table(
        "compliance_consents",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("zone_id", ID, nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column("document", sa.String(200), nullable=False),
        sa.Column("document_sha256", sa.String(64), nullable=True),
        sa.Column("on_day", sa.Date(), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("created_ms", ID, nullable=False),
        sa.ForeignKeyConstraint(["zone_id"], ["compliance_zones.id"],
                                name=op.f("fk_compliance_consents_zone_id_compliance_zones"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["system_id"], ["compliance_systems.id"],
                                name=op.f("fk_compliance_consents_system_id_compliance_systems"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["document_sha256"], ["compliance_photos.sha256"],
                                name=op.f("fk_compliance_consents_document_sha256_compliance_photos"),
                                ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_consents")),
    )
    op.create_table(
        "compliance_changes",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column("what", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("detected_on", sa.Date(), nullable=False),
        sa.Column("filing_id", ID, nullable=True),
        sa.Column("created_ms", ID, nullable=False),
        sa.ForeignKeyConstraint(["system_id"], ["compliance_systems.id"],
                                name=op.f("fk_compliance_changes_system_id_compliance_systems"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_changes")),
    )
    op.create_index("ix_compliance_changes_system", "compliance_changes", ["system_id", "filing_id"], unique=False)
    op.create_table(
        "compliance_filings",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("system_id", ID, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("pack", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("authority", sa.String(64), nullable=False),
        sa.Column("event_on", sa.Date(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("contents", sa.JSON(), nullable=False),
        sa.Column("contents_sha256", sa.String(64), nullable=False),
        sa.Column("package", sa.JSON(), nullable=False),
        sa.Column("filed_on", sa.Date(), nullable=True),
        sa.Column("receipt", sa.JSON(), nullable=True),
        sa.Column("refusal", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_ms", ID, nullable=False),
        sa.Column("updated_ms", ID, nullable=False),
        sa.ForeignKeyConstraint(["system_id"], ["compliance_systems.id"],
                                name=op.f("fk_compliance_filings_system_id_compliance_systems"), ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_filings")),
    )
    op.create_index("ix_compliance_filings_system", "compliance_filings", ["system_id", "kind"], unique=False)
    op.create_table(
        "intake_unit_keys",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("unit_name", sa.String(200), nullable=False),
        sa.Column("district", sa.String(100), nullable=False),
        sa.Column("public_pem", sa.Text(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("registered_by", sa.String(64), nullable=False),
        sa.Column("registered_ms", ID, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_unit_keys")),
        sa.UniqueConstraint("unit_code", name=op.f("uq_intake_unit_keys_unit_code")),
    )
    op.create_table(
        "intake_filings",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("receipt_id", sa.String(32), nullable=False),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("district", sa.String(100), nullable=False),
        sa.Column("system_code", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("event_on", sa.Date(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("received_ms", ID, nullable=False),
        sa.Column("package", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_filings")),
        sa.UniqueConstraint("receipt_id", name=op.f("uq_intake_filings_receipt_id")),
        sa.UniqueConstraint("content_sha256", name=op.f("uq_intake_filings_content_sha256")),
    )
    op.create_index("ix_intake_filings_unit", "intake_filings", ["unit_code", "system_code"], unique=False)
    op.create_table(
        "intake_snapshots",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("unit_code", sa.String(64), nullable=False),
        sa.Column("generated_ms", ID, nullable=False),
        sa.Column("received_ms", ID, nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_snapshots")),
        sa.UniqueConstraint("content_sha256", name=op.f("uq_intake_snapshots_content_sha256")),
    )
    op.create_index("ix_intake_snapshots_unit", "intake_snapshots", ["unit_code", "generated_ms"], unique=False)


def downgrade() -> None:
    for t in reversed(TABLES):
        op.drop_table(t)
