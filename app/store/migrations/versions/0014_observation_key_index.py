"""results found by their key alone, not by patient and key

Revision ID: 0014
Revises: 0013

Each new result is looked up among the current ones by its key (the order and the code),
to find a result it corrects. With the index on (patient, key), PostgreSQL read every
current result of the batch's patients and filtered them by key: once the patients of a
ten-minute run at 500 msg/s had a few thousand results each, that took 30-130 ms a batch,
and the receiver, which had kept up for three and a half minutes, fell behind for good.
The key alone names one order's result, so an index on it is one lookup per key, however
long a patient's record grows; the patient is matched after.
"""
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_obs_result_key", "observations", ["result_key"])
    op.drop_index("ix_obs_patient_key", "observations")


def downgrade() -> None:
    op.create_index("ix_obs_patient_key", "observations", ["patient_id", "result_key"])
    op.drop_index("ix_obs_result_key", "observations")
