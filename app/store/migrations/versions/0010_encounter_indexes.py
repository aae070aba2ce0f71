"""indexes for a patient's visit by number, and for the latest active one

Revision ID: 0010
Revises: 0009

Most ADT and results name their visit (PV1-19); one that does not means the patient's
latest active visit. Without these indexes finding either read all of the patient's
visits, so processing slowed down as patients' records grew (`bench/ingest.py --sustain`
fell behind after a few minutes at 500 msg/s).
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_encounter_patient_visit", "encounters", ["patient_id", "visit_number"])
    op.create_index("ix_encounter_patient_status_id", "encounters",
                    ["patient_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_encounter_patient_status_id", "encounters")
    op.drop_index("ix_encounter_patient_visit", "encounters")
