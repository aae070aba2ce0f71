"""the inbox's shard: which worker process takes a message

Revision ID: 0011
Revises: 0010

A receiver may run several processing workers (`[ingest] workers`). Each takes the
messages of its shards; the shard comes from the patient key at receipt and never
changes, so one patient's messages are always one worker's, in order. Messages received
before this revision are shard 0.
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox_messages") as batch:
        batch.add_column(sa.Column("shard", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("inbox_messages") as batch:
        batch.drop_column("shard")
