"""an index for a patient's visit by number

Revision ID: 0010
Revises: 0009

Every ADT and most results name their visit (PV1-19); without this index, finding it read
all of the patient's visits, so processing slowed down as a patient's record grew (seen
in `bench/ingest.py --sustain`).
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_encounter_patient_visit", "encounters", ["patient_id", "visit_number"])


def downgrade() -> None:
    op.drop_index("ix_encounter_patient_visit", "encounters")
