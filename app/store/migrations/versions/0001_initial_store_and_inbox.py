"""initial store and inbox

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 10:04:32.157743
"""
import sqlalchemy as sa
from alembic import op

import app.store.models

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('inbox_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('received_at', app.store.models.UTCDateTime(), nullable=False),
    sa.Column('peer', sa.String(length=64), nullable=False),
    sa.Column('sending_application', sa.String(length=227), nullable=False),
    sa.Column('sending_facility', sa.String(length=227), nullable=False),
    sa.Column('control_id', sa.String(length=199), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('message_type', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('version', sa.String(length=16), nullable=False),
    sa.Column('charset', sa.String(length=32), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('ack_code', sa.String(length=2), nullable=False),
    sa.Column('ack_error_code', sa.String(length=8), nullable=False),
    sa.Column('ack_error_text', sa.Text(), nullable=False),
    sa.Column('ack_error_location', sa.String(length=64), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', app.store.models.UTCDateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('processed_at', app.store.models.UTCDateTime(), nullable=True),
    sa.Column('patient_key', sa.String(length=32), nullable=False),
    sa.Column('duplicate_count', sa.Integer(), nullable=False),
    sa.Column('last_duplicate_at', app.store.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sending_application', 'sending_facility', 'control_id', 'content_hash', name='uq_inbox_message_key')
    )
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_content_hash', ['content_hash'], unique=False)
        batch_op.create_index('ix_inbox_status_id', ['status', 'id'], unique=False)

    op.create_table('patients',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('family_name', sa.String(length=200), nullable=False),
    sa.Column('given_name', sa.String(length=200), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('sex', sa.String(length=1), nullable=False),
    sa.Column('race', sa.String(length=64), nullable=False),
    sa.Column('ethnicity', sa.String(length=64), nullable=False),
    sa.Column('deceased', sa.Boolean(), nullable=False),
    sa.Column('merged_into_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', app.store.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', app.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['merged_into_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patients_merged_into_id'), ['merged_into_id'], unique=False)

    op.create_table('encounters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('patient_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('visit_number', sa.String(length=199), nullable=False),
    sa.Column('patient_class', sa.String(length=8), nullable=False),
    sa.Column('location', sa.String(length=400), nullable=False),
    sa.Column('prior_location', sa.String(length=400), nullable=False),
    sa.Column('attending', sa.String(length=199), nullable=False),
    sa.Column('referring', sa.String(length=199), nullable=False),
    sa.Column('admitting', sa.String(length=199), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('admitted_at', app.store.models.UTCDateTime(), nullable=True),
    sa.Column('discharged_at', app.store.models.UTCDateTime(), nullable=True),
    sa.Column('last_event', sa.String(length=8), nullable=False),
    sa.Column('updated_at', app.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('encounters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_encounters_patient_id'), ['patient_id'], unique=False)

    op.create_table('patient_identifiers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('patient_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('value', sa.String(length=199), nullable=False),
    sa.Column('authority', sa.String(length=227), nullable=False),
    sa.Column('type_code', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('value', 'authority', name='uq_identifier')
    )
    with op.batch_alter_table('patient_identifiers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_identifiers_patient_id'), ['patient_id'], unique=False)

    op.create_table('diagnoses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('patient_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('encounter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('coding_system', sa.String(length=64), nullable=False),
    sa.Column('display', sa.String(length=400), nullable=False),
    sa.Column('diagnosed_at', app.store.models.UTCDateTime(), nullable=True),
    sa.Column('diagnosis_type', sa.String(length=8), nullable=False),
    sa.Column('recorded_at', app.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['encounter_id'], ['encounters.id'], ),
    sa.ForeignKeyConstraint(['message_id'], ['inbox_messages.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('diagnoses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_diagnoses_message_id'), ['message_id'], unique=False)
        batch_op.create_index('ix_dx_patient_code', ['patient_id', 'code'], unique=False)

    op.create_table('observations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('patient_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('encounter_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('result_key', sa.String(length=600), nullable=False),
    sa.Column('set_id', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=128), nullable=False),
    sa.Column('coding_system', sa.String(length=64), nullable=False),
    sa.Column('loinc', sa.String(length=16), nullable=False),
    sa.Column('display', sa.String(length=400), nullable=False),
    sa.Column('sub_id', sa.String(length=32), nullable=False),
    sa.Column('value_type', sa.String(length=8), nullable=False),
    sa.Column('value_text', sa.Text(), nullable=False),
    sa.Column('value_num', sa.Float(), nullable=True),
    sa.Column('comparator', sa.String(length=4), nullable=False),
    sa.Column('units', sa.String(length=64), nullable=False),
    sa.Column('reference_range', sa.String(length=128), nullable=False),
    sa.Column('abnormal_flag', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=4), nullable=False),
    sa.Column('observed_at', app.store.models.UTCDateTime(), nullable=True),
    sa.Column('recorded_at', app.store.models.UTCDateTime(), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.Column('superseded_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['encounter_id'], ['encounters.id'], ),
    sa.ForeignKeyConstraint(['message_id'], ['inbox_messages.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], ),
    sa.ForeignKeyConstraint(['superseded_by_id'], ['observations.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('observations', schema=None) as batch_op:
        batch_op.create_index('ix_obs_patient_current_time', ['patient_id', 'is_current', 'observed_at'], unique=False)
        batch_op.create_index('ix_obs_patient_key', ['patient_id', 'result_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_observations_loinc'), ['loinc'], unique=False)
        batch_op.create_index(batch_op.f('ix_observations_message_id'), ['message_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('observations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_observations_message_id'))
        batch_op.drop_index(batch_op.f('ix_observations_loinc'))
        batch_op.drop_index('ix_obs_patient_key')
        batch_op.drop_index('ix_obs_patient_current_time')

    op.drop_table('observations')
    with op.batch_alter_table('diagnoses', schema=None) as batch_op:
        batch_op.drop_index('ix_dx_patient_code')
        batch_op.drop_index(batch_op.f('ix_diagnoses_message_id'))

    op.drop_table('diagnoses')
    with op.batch_alter_table('patient_identifiers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_identifiers_patient_id'))

    op.drop_table('patient_identifiers')
    with op.batch_alter_table('encounters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_encounters_patient_id'))

    op.drop_table('encounters')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patients_merged_into_id'))

    op.drop_table('patients')
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_status_id')
        batch_op.drop_index('ix_inbox_content_hash')

    op.drop_table('inbox_messages')

