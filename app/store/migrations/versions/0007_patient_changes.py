"""patient changes: the journal a department's workstations follow

Revision ID: 0007
Revises: 0006

One row per patient a processed message changed, written in the message's transaction.
On PostgreSQL a statement trigger sends NOTIFY clarion_patient_changes with no payload
(any role may LISTEN; payloads are capped at 8,000 bytes): the doorbell, not the news.
"""
import sqlalchemy as sa
from alembic import op

import app.store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CHANNEL = "clarion_patient_changes"


def upgrade() -> None:
    op.create_table(
        "patient_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("message_type", sa.String(length=8), nullable=False),
        sa.Column("trigger", sa.String(length=8), nullable=False),
        sa.Column("loincs", sa.Text(), nullable=False),
        sa.Column("location", sa.String(length=128), nullable=False),
        sa.Column("providers", sa.Text(), nullable=False),
        sa.Column("received_at", app.store.models.UTCDateTime(), nullable=False),
        sa.Column("processed_at", app.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_patient_changes_processed", "patient_changes", ["processed_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE FUNCTION patient_changes_ring() RETURNS trigger AS $$ BEGIN "
                   f"NOTIFY {CHANNEL}; RETURN NULL; END $$ LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER patient_changes_ring AFTER INSERT ON patient_changes "
                   "FOR EACH STATEMENT EXECUTE FUNCTION patient_changes_ring()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER patient_changes_ring ON patient_changes")
        op.execute("DROP FUNCTION patient_changes_ring()")
    op.drop_table("patient_changes")
