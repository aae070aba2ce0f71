"""index on the adoption log's time, for the figures of a period

Revision ID: 0005
Revises: 0004

The adoption figures (app/adoption/figures.py) read every event of a period, whatever
its type; without an index on the time alone that is a scan of the whole log (a year of
a department: about a million rows).
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_alert_events_at", "alert_events", ["at"])


def downgrade() -> None:
    op.drop_index("ix_alert_events_at", "alert_events")
