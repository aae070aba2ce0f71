"""the fast lane: a message's lane, and an index for a patient's received messages

Revision ID: 0004
Revises: 0003

The listener stores each message's patient key at receipt, and marks the messages it
hands to the fast lane (app/ingest/fastlane.py) so that the low-priority worker does not take
them meanwhile; the fast lane then processes "this patient's received messages up to
this one", which without the index would scan every received message.
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("inbox_messages", sa.Column("lane", sa.String(8), nullable=False,
                                              server_default=""))
    op.create_index("ix_inbox_patient_status_id", "inbox_messages",
                    ["patient_key", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_inbox_patient_status_id", "inbox_messages")
    with op.batch_alter_table("inbox_messages") as batch:
        batch.drop_column("lane")
