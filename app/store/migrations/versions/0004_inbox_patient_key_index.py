"""index for the fast lane: a patient's received messages, in order

Revision ID: 0004
Revises: 0003

The listener stores each message's patient key at receipt; the fast lane (app/ingest.py)
then processes "this patient's received messages up to this one" for a patient open on
the workstation, which without the index would scan every received message.
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inbox_patient_status_id", "inbox_messages",
                    ["patient_key", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_inbox_patient_status_id", "inbox_messages")
