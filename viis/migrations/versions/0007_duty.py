"""duty: shifts and handover, the duty log, the monitoring-room register and reports to the
police (Q19.1, Q19.2, Q19.4, Q19.5, N16.1); also merges every 0006 branch into one line

Revision ID: 0007_duty
Revises: 0006_audit, 0006_console, 0006_filings, 0006_health_quality, 0006_masks, 0006_signage
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_duty"
down_revision = ("0006_audit", "0006_console", "0006_filings", "0006_health_quality",
                 "0006_masks", "0006_signage")
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(table: str, col: str, ref: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([col], [f"{ref}.id"], name=op.f(f"fk_{table}_{col}_{ref}"),
                                   ondelete="RESTRICT")


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))


def upgrade() -> None:
    t = "duty_shifts"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("organisation_id", ID, nullable=False),
        sa.Column("started_ms", ID, nullable=False),
        sa.Column("ended_ms", ID, nullable=True),
        sa.Column("handover_note", sa.Text(), nullable=False),
        sa.Column("handover_to_id", ID, nullable=True),
        _fk(t, "user_id", "users"),
        _fk(t, "organisation_id", "organisations"),
        _fk(t, "handover_to_id", "users"),
        _pk(t),
    )
    op.create_index("ix_duty_shifts_user", t, ["user_id", "ended_ms"])
    t = "duty_log_entries"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("shift_id", ID, nullable=False),
        sa.Column("at_ms", ID, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("camera_id", ID, nullable=True),
        sa.Column("footage_ms", ID, nullable=True),
        _fk(t, "shift_id", "duty_shifts"),
        _fk(t, "camera_id", "cameras"),
        _pk(t),
    )
    op.create_index("ix_duty_log_entries_shift", t, ["shift_id"])
    t = "room_visits"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("entered_ms", ID, nullable=False),
        sa.Column("left_ms", ID, nullable=True),
        sa.Column("user_id", ID, nullable=True),
        sa.Column("person_name", sa.String(100), nullable=False),
        sa.Column("id_number", sa.String(32), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("admitted_by_id", ID, nullable=False),
        sa.Column("left_recorded_by_id", ID, nullable=True),
        _fk(t, "user_id", "users"),
        _fk(t, "admitted_by_id", "users"),
        _fk(t, "left_recorded_by_id", "users"),
        _pk(t),
    )
    op.create_index("ix_room_visits_entered", t, ["entered_ms"])
    t = "police_reports"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("at_ms", ID, nullable=False),
        sa.Column("reporter_id", ID, nullable=False),
        sa.Column("shift_id", ID, nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("police_unit", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("acknowledged_ms", ID, nullable=True),
        sa.Column("acknowledged_by_id", ID, nullable=True),
        _fk(t, "reporter_id", "users"),
        _fk(t, "shift_id", "duty_shifts"),
        _fk(t, "acknowledged_by_id", "users"),
        _pk(t),
    )
    t = "police_report_ranges"
    op.create_table(
        t,
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("report_id", ID, nullable=False),
        sa.Column("camera_id", ID, nullable=False),
        sa.Column("from_ms", ID, nullable=False),
        sa.Column("to_ms", ID, nullable=False),
        sa.Column("hold_id", ID, nullable=True),
        _fk(t, "report_id", "police_reports"),
        _fk(t, "camera_id", "cameras"),
        _fk(t, "hold_id", "holds"),
        _pk(t),
    )
    op.create_index("ix_police_report_ranges_report", t, ["report_id"])


def downgrade() -> None:
    op.drop_index("ix_police_report_ranges_report", table_name="police_report_ranges")
    op.drop_table("police_report_ranges")
    op.drop_table("police_reports")
    op.drop_index("ix_room_visits_entered", table_name="room_visits")
    op.drop_table("room_visits")
    op.drop_index("ix_duty_log_entries_shift", table_name="duty_log_entries")
    op.drop_table("duty_log_entries")
    op.drop_index("ix_duty_shifts_user", table_name="duty_shifts")
    op.drop_table("duty_shifts")
