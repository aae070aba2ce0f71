"""two indexes on results that no query reads: by LOINC alone, by message alone

Revision ID: 0012
Revises: 0011

Results are read by patient (ix_obs_patient_id, ix_obs_patient_current_time,
ix_obs_patient_key: the feature cache, the patient view, corrections). Nothing reads them
by LOINC code alone; by message only where a message corrects its own results, and that
query names the patient and the result key too. Each index costs every result stored
(20 per lab panel): a receiver processing a hospital's feed does not pay for them.
Inbox messages are never deleted, so the foreign key needs no index to check.
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_observations_loinc", "observations")
    op.drop_index("ix_observations_message_id", "observations")


def downgrade() -> None:
    op.create_index("ix_observations_message_id", "observations", ["message_id"])
    op.create_index("ix_observations_loinc", "observations", ["loinc"])
