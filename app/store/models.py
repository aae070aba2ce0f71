"""The patient store and the durable inbox, as SQLAlchemy 2.0 typed mappings.

Times are stored as naive UTC (`UTCDateTime`) and come back timezone-aware, so SQLite and
PostgreSQL behave the same.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, naive UTC in the database, aware UTC out."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use UTC-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """A mapped class's Core table, for statements built once (SQLAlchemy types
    `__table__` as the wider FromClause, which insert() and update() do not take)."""
    return cast(Table, model.__table__)


class InboxStatus(StrEnum):
    """Where a received message stands."""

    RECEIVED = "received"  # durably stored and ACKed, waiting to be processed
    PROCESSED = "processed"  # applied to the patient store
    IGNORED = "ignored"  # a type Clarion does not use; kept raw
    REJECTED = "rejected"  # unreadable or refused at receipt (AE/AR); kept for inspection
    FAILED = "failed"  # processing failed every attempt; quarantined with its error


class InboxMessage(Base):
    """One received message, raw bytes and all: the durable inbox."""

    __tablename__ = "inbox_messages"
    __table_args__ = (
        UniqueConstraint("sending_application", "sending_facility", "control_id",
                         "content_hash", name="uq_inbox_message_key"),
        Index("ix_inbox_status_id", "status", "id"),
        # What the processors ask for: the oldest received messages (migration 0013).
        Index("ix_inbox_received", "id", postgresql_where=text("status = 'received'"),
              sqlite_where=text("status = 'received'")),
        # The fast lane: one patient's received messages in order (migration 0004).
        Index("ix_inbox_patient_status_id", "patient_key", "status", "id"),
        Index("ix_inbox_content_hash", "content_hash"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    peer: Mapped[str] = mapped_column(String(64), default="")
    sending_application: Mapped[str] = mapped_column(String(227), default="")
    sending_facility: Mapped[str] = mapped_column(String(227), default="")
    control_id: Mapped[str] = mapped_column(String(199), default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    message_type: Mapped[str] = mapped_column(String(16), default="")
    trigger: Mapped[str] = mapped_column(String(16), default="")
    version: Mapped[str] = mapped_column(String(16), default="")
    charset: Mapped[str] = mapped_column(String(32), default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=InboxStatus.RECEIVED.value)
    ack_code: Mapped[str] = mapped_column(String(2), default="")
    ack_error_code: Mapped[str] = mapped_column(String(8), default="")
    ack_error_text: Mapped[str] = mapped_column(Text, default="")
    ack_error_location: Mapped[str] = mapped_column(String(64), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    patient_key: Mapped[str] = mapped_column(String(32), default="")  # pseudonym, for ordering
    # 0-15, from the patient key at receipt and never changed: worker k of n processes the
    # shards s with s % n == k, so one patient's messages go to one worker (migration 0011).
    shard: Mapped[int] = mapped_column(Integer, default=0)
    # "fast": for a patient open on this workstation, handed to the fast lane at receipt
    # (app/ingest/fastlane.py); the bulk worker leaves it alone for a grace period (migration 0004).
    lane: Mapped[str] = mapped_column(String(8), default="")
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)
    last_duplicate_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Patient(Base):
    """A person, found by any of their identifiers."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    family_name: Mapped[str] = mapped_column(String(200), default="")
    given_name: Mapped[str] = mapped_column(String(200), default="")
    birth_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    sex: Mapped[str] = mapped_column(String(1), default="")
    race: Mapped[str] = mapped_column(String(64), default="")
    ethnicity: Mapped[str] = mapped_column(String(64), default="")
    deceased: Mapped[bool] = mapped_column(Boolean, default=False)
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("patients.id"), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    identifiers: Mapped[list[PatientIdentifier]] = relationship(
        back_populates="patient", cascade="all, delete-orphan")


class PatientIdentifier(Base):
    """(identifier, assigning authority) → patient. PID-3 repetitions keep their authority."""

    __tablename__ = "patient_identifiers"
    __table_args__ = (UniqueConstraint("value", "authority", name="uq_identifier"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    value: Mapped[str] = mapped_column(String(199))
    authority: Mapped[str] = mapped_column(String(227), default="")
    type_code: Mapped[str] = mapped_column(String(16), default="")

    patient: Mapped[Patient] = relationship(back_populates="identifiers")


class EncounterStatus(StrEnum):
    ACTIVE = "active"
    DISCHARGED = "discharged"
    CANCELLED = "cancelled"


class Encounter(Base):
    """A visit (PV1), kept up to date by admits, transfers, discharges and cancels."""

    __tablename__ = "encounters"
    # A message names its visit by number, or means the patient's latest active one: both
    # found without reading the patient's other visits (migration 0010).
    __table_args__ = (Index("ix_encounter_patient_visit", "patient_id", "visit_number"),
                      Index("ix_encounter_patient_status_id", "patient_id", "status", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    visit_number: Mapped[str] = mapped_column(String(199), default="")
    patient_class: Mapped[str] = mapped_column(String(8), default="")
    location: Mapped[str] = mapped_column(String(400), default="")
    prior_location: Mapped[str] = mapped_column(String(400), default="")
    attending: Mapped[str] = mapped_column(String(199), default="")
    referring: Mapped[str] = mapped_column(String(199), default="")
    admitting: Mapped[str] = mapped_column(String(199), default="")
    status: Mapped[str] = mapped_column(String(16), default=EncounterStatus.ACTIVE.value)
    admitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    discharged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_event: Mapped[str] = mapped_column(String(8), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ObservationRecord(Base):
    """One OBX result. A correction supersedes (is_current False) the result it corrects."""

    __tablename__ = "observations"
    __table_args__ = (
        Index("ix_obs_patient_current_time", "patient_id", "is_current", "observed_at"),
        # A new result finds the one it corrects by its key (patients.py; migration 0014).
        Index("ix_obs_result_key", "result_key"),
        # The feature cache reads a patient's rows added since it last looked (id > last).
        Index("ix_obs_patient_id", "patient_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"), nullable=True)
    # Not indexed: no query reads results by message alone (migration 0012).
    message_id: Mapped[int] = mapped_column(ForeignKey("inbox_messages.id"))
    result_key: Mapped[str] = mapped_column(String(600))
    set_id: Mapped[str] = mapped_column(String(16), default="")
    code: Mapped[str] = mapped_column(String(128), default="")
    coding_system: Mapped[str] = mapped_column(String(64), default="")
    loinc: Mapped[str] = mapped_column(String(16), default="")
    display: Mapped[str] = mapped_column(String(400), default="")
    sub_id: Mapped[str] = mapped_column(String(32), default="")
    value_type: Mapped[str] = mapped_column(String(8), default="")
    value_text: Mapped[str] = mapped_column(Text, default="")
    value_num: Mapped[float | None] = mapped_column(Float, nullable=True)
    comparator: Mapped[str] = mapped_column(String(4), default="")
    units: Mapped[str] = mapped_column(String(64), default="")
    reference_range: Mapped[str] = mapped_column(String(128), default="")
    abnormal_flag: Mapped[str] = mapped_column(String(16), default="")
    status: Mapped[str] = mapped_column(String(4), default="")
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    superseded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("observations.id"), nullable=True)


class DiagnosisRecord(Base):
    """One DG1 diagnosis."""

    __tablename__ = "diagnoses"
    __table_args__ = (Index("ix_dx_patient_code", "patient_id", "code"),
                      Index("ix_dx_patient_id", "patient_id", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"), nullable=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("inbox_messages.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    coding_system: Mapped[str] = mapped_column(String(64), default="")
    display: Mapped[str] = mapped_column(String(400), default="")
    diagnosed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    diagnosis_type: Mapped[str] = mapped_column(String(8), default="")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertEvent(Base):
    """The adoption log: one row per thing that happened to an alert. Append-only — the
    migration installs triggers that refuse UPDATE and DELETE."""

    __tablename__ = "alert_events"
    __table_args__ = (
        Index("ix_alert_events_alert", "alert_id"),
        Index("ix_alert_events_patient_at", "patient_id", "at"),
        # by type and time; with the reason, the suppressed decisions of a period are
        # counted from the index alone (0006)
        Index("ix_alert_events_event_at_reason", "event", "at", "reason"),
        Index("ix_alert_events_at", "at"),  # the adoption figures of a period (0005)
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(String(36))
    event: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    workstation: Mapped[str] = mapped_column(String(128), default="")
    clinician: Mapped[str] = mapped_column(String(128), default="")
    department: Mapped[str] = mapped_column(String(128), default="")
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    model: Mapped[str] = mapped_column(String(64), default="")
    label: Mapped[str] = mapped_column(String(64), default="")
    risk: Mapped[float | None] = mapped_column(Float, nullable=True)
    tier: Mapped[str] = mapped_column(String(24), default="")
    engine: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON: latency, screenings …


class AlertSummary(Base):
    """One row per alert, folded from its events by a trigger on `alert_events`
    (app/store/summary.py, migration 0006): what the adoption figures read. Times are
    epoch milliseconds (UTC)."""

    __tablename__ = "alert_summary"
    __table_args__ = (Index("ix_alert_summary_generated", "generated_ms"),)

    alert_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    generated_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    displayed_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    viewed_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    screened_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    abnormal: Mapped[float | None] = mapped_column(Float, nullable=True)
    department: Mapped[str | None] = mapped_column(String(128), nullable=True)
    workstation: Mapped[str | None] = mapped_column(String(128), nullable=True)
    clinician: Mapped[str | None] = mapped_column(String(128), nullable=True)
    model: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tier: Mapped[str | None] = mapped_column(String(24), nullable=True)


class PatientChangeRecord(Base):
    """The change journal: one row per patient a processed message changed, written in
    the same transaction as the change (app/ingest/processor.py). A department's
    workstations read it after the last id they saw (app/ingest/journal.py); on
    PostgreSQL a trigger rings a NOTIFY (no payload) after each insert (0007)."""

    __tablename__ = "patient_changes"
    __table_args__ = (Index("ix_patient_changes_processed", "processed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    message_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    message_type: Mapped[str] = mapped_column(String(8), default="")
    trigger: Mapped[str] = mapped_column(String(8), default="")
    loincs: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    location: Mapped[str] = mapped_column(String(128), default="")
    providers: Mapped[str] = mapped_column(Text, default="")  # comma-separated
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WaveformRecord(Base):
    """One ECG recording of a patient: its leads at one rate (compact binary), or a
    document (PDF, DICOM) kept as received. `status` is "ok" (analysable), "quarantined"
    (stored, not analysable: `problems` says why) or "document" (listed, not analysed)."""

    __tablename__ = "waveforms"
    __table_args__ = (Index("ix_waveforms_patient_id", "patient_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    encounter_id: Mapped[int | None] = mapped_column(ForeignKey("encounters.id"), nullable=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("inbox_messages.id"), index=True)
    order_key: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(16))  # PCD-01, aECG, PDF, DICOM, document
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    rate_hz: Mapped[float | None] = mapped_column(Float, nullable=True)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    leads: Mapped[str] = mapped_column(Text, default="[]")  # JSON: name, code, samples
    encoding: Mapped[str] = mapped_column(String(24), default="")  # int16-uV-zlib ...
    data: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    status: Mapped[str] = mapped_column(String(16))
    problems: Mapped[str] = mapped_column(Text, default="")  # one per line
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DepartmentLocation(Base):
    """Which points of care (PV1-3.1) make up a department: a workstation's database role
    sees the patients with an encounter at one of its department's locations (row-level
    security, `clarion department init`, app/store/department.py)."""

    __tablename__ = "clarion_departments"

    department: Mapped[str] = mapped_column(String(128), primary_key=True)
    location: Mapped[str] = mapped_column(String(128), primary_key=True)


class DatabaseRole(Base):
    """A workstation's database role (or a clinician's, one per certificate): its department
    and the names the adoption log records for it. A trigger stamps every event a mapped
    role inserts with these, whatever the client wrote (migration 0009)."""

    __tablename__ = "clarion_db_roles"

    role_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    department: Mapped[str] = mapped_column(String(128))
    workstation: Mapped[str] = mapped_column(String(128))
    clinician: Mapped[str] = mapped_column(String(128), default="")
