"""alert summary: one row per alert, kept by a trigger on the adoption log

Revision ID: 0006
Revises: 0005

The adoption figures of a year pivoted about a million events per call (seconds); the
summary holds each alert's row already (app/store/summary.py). Filled here from the
events already logged. The index on (event, at) gains the reason, so the suppressed
decisions of a period are counted by reason from the index alone.
"""
import sqlalchemy as sa
from alembic import op

from app.store import summary

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    times = ("generated_ms", "displayed_ms", "viewed_ms", "finished_ms", "screened_ms")
    op.create_table(
        "alert_summary",
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        *(sa.Column(name, sa.Float(), nullable=True) for name in times),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("abnormal", sa.Float(), nullable=True),
        sa.Column("department", sa.String(length=128), nullable=True),
        sa.Column("workstation", sa.String(length=128), nullable=True),
        sa.Column("clinician", sa.String(length=128), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("tier", sa.String(length=24), nullable=True),
        sa.PrimaryKeyConstraint("alert_id"),
    )
    op.create_index("ix_alert_summary_generated", "alert_summary", ["generated_ms"])
    op.create_index("ix_alert_events_event_at_reason", "alert_events", ["event", "at", "reason"])
    op.drop_index("ix_alert_events_event_at", "alert_events")
    dialect = op.get_bind().dialect.name
    for statement in summary.create_trigger(dialect):
        op.execute(statement)
    op.execute(summary.backfill(dialect))


def downgrade() -> None:
    for statement in summary.drop_trigger(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table("alert_summary")
    op.create_index("ix_alert_events_event_at", "alert_events", ["event", "at"])
    op.drop_index("ix_alert_events_event_at_reason", "alert_events")
