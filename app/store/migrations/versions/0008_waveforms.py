"""waveforms: ECG recordings from the feed (PCD-01 sample arrays, aECG, PDF, DICOM)

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

import app.store.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "waveforms",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("patient_id", _ID, nullable=False),
        sa.Column("encounter_id", _ID, nullable=True),
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("order_key", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("started_at", app.store.models.UTCDateTime(), nullable=True),
        sa.Column("rate_hz", sa.Float(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("leads", sa.Text(), nullable=False),
        sa.Column("encoding", sa.String(length=24), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.Column("recorded_at", app.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["encounter_id"], ["encounters.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["inbox_messages.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_waveforms_patient_id", "waveforms", ["patient_id", "id"])
    op.create_index("ix_waveforms_message_id", "waveforms", ["message_id"])


def downgrade() -> None:
    op.drop_table("waveforms")
