"""alert events: the append-only adoption log

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

import app.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("event", sa.String(length=24), nullable=False),
        sa.Column("at", app.store.models.UTCDateTime(), nullable=False),
        sa.Column("workstation", sa.String(length=128), nullable=False),
        sa.Column("clinician", sa.String(length=128), nullable=False),
        sa.Column("department", sa.String(length=128), nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("risk", sa.Float(), nullable=True),
        sa.Column("tier", sa.String(length=24), nullable=False),
        sa.Column("engine", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alert_events_alert", "alert_events", ["alert_id"])
    op.create_index("ix_alert_events_patient_at", "alert_events", ["patient_id", "at"])
    op.create_index("ix_alert_events_event_at", "alert_events", ["event", "at"])
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER alert_events_no_{action.lower()} BEFORE {action} ON "
                       "alert_events BEGIN SELECT RAISE(ABORT, 'alert_events is append-only'); "
                       "END")
    else:
        op.execute("CREATE FUNCTION alert_events_append_only() RETURNS trigger AS $$ BEGIN "
                   "RAISE EXCEPTION 'alert_events is append-only'; END $$ LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER alert_events_append_only BEFORE UPDATE OR DELETE ON "
                   "alert_events FOR EACH ROW EXECUTE FUNCTION alert_events_append_only()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER alert_events_append_only ON alert_events")
        op.execute("DROP FUNCTION alert_events_append_only()")
    op.drop_table("alert_events")
