"""Applying ADT and ORU to the store: visits, corrections, merges, lookups."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.config import Config
from app.ingest.processor import PatientChanged, Processor
from app.store.db import open_store
from app.store.models import Encounter, InboxMessage, Patient
from app.store.patients import find_by_identifier, timeline
from tests.app.helpers import hl7_message, store_raw

_ids = count(1)


def msg(trigger: str, *segments: str, mtype: str = "ADT") -> str:
    return hl7_message(
        f"MSH|^~\\&|EHR|HOSP|CLARION|WS|20260105080000||{mtype}^{trigger}|M{next(_ids)}|P|2.5",
        *segments)


PID = "PID|1||{mrn}^^^HOSP^MR||Doe^Jane||19700203|F"


def pv1(**fields: str) -> str:
    """A PV1 with fields placed by number: pv1(f3="ER", f19="V1")."""
    values = {int(k[1:]): v for k, v in fields.items()}
    return "|".join(["PV1"] + [values.get(i, "") for i in range(1, max(values) + 1)])


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    engine = open_store(config.database_url)
    yield engine
    engine.dispose()


def ingest(engine: Engine, *messages: str) -> list[PatientChanged]:
    changes: list[PatientChanged] = []
    store_raw(engine, *messages)
    Processor(engine, on_change=changes.append).process_pending()
    return changes


def test_admit_transfer_discharge_cancel(engine: Engine) -> None:
    pid = PID.format(mrn="A1")
    ingest(engine, msg("A01", pid, pv1(f2="I", f3="ER^1^A^HOSP", f7="D1", f19="V1", f44="20260105070000")))
    ingest(engine, msg("A02", pid, pv1(f3="WARD^2^B^HOSP", f6="ER^1^A^HOSP", f19="V1")))
    with Session(engine) as s:
        [enc] = s.scalars(select(Encounter)).all()
        assert (enc.location, enc.prior_location, enc.status) == (
            "WARD^2^B^HOSP", "ER^1^A^HOSP", "active")
    ingest(engine, msg("A03", pid, pv1(f3="WARD^2^B^HOSP", f19="V1", f45="20260106090000")))
    with Session(engine) as s:
        enc = s.scalars(select(Encounter)).one()
        assert enc.status == "discharged" and enc.discharged_at is not None
    ingest(engine, msg("A13", pid, pv1(f3="WARD^2^B^HOSP", f19="V1")))
    with Session(engine) as s:
        enc = s.scalars(select(Encounter)).one()
        assert enc.status == "active" and enc.discharged_at is None
    ingest(engine, msg("A11", pid, pv1(f3="WARD^2^B^HOSP", f19="V1")))
    with Session(engine) as s:
        assert s.scalars(select(Encounter)).one().status == "cancelled"


def test_corrected_result_replaces_the_earlier_one(engine: Engine) -> None:
    pid = PID.format(mrn="C1")
    obr = "OBR|1|P9|F9|4548-4^HbA1c^LN|||20260105070000"
    ingest(engine, msg("R01", pid, obr, "OBX|1|NM|4548-4^HbA1c^LN||7.1|%||H|||F", mtype="ORU"))
    ingest(engine, msg("R01", pid, obr, "OBX|1|NM|4548-4^HbA1c^LN||6.1|%||H|||C", mtype="ORU"))
    with Session(engine) as s:
        [patient] = find_by_identifier(s, "C1", "HOSP")
        [current] = timeline(s, patient).observations
        assert (current.value_num, current.status) == (6.1, "C")
        history = timeline(s, patient, include_superseded=True).observations
        assert sorted(o.value_num for o in history) == [6.1, 7.1]


def test_a_correction_stays_with_its_patient_when_another_shares_the_result_key(
        engine: Engine) -> None:
    """Results are looked up by key alone (migration 0014); two patients whose results
    share one (the same order number from two senders, say) keep each their own."""
    obr = "OBR|1|P5|F5|4548-4^HbA1c^LN|||20260105070000"
    first, second = PID.format(mrn="K1"), PID.format(mrn="K2")
    ingest(engine, msg("R01", first, obr, "OBX|1|NM|4548-4^HbA1c^LN||7.1|%||H|||F", mtype="ORU"),
           msg("R01", second, obr, "OBX|1|NM|4548-4^HbA1c^LN||5.2|%||N|||F", mtype="ORU"))
    ingest(engine, msg("R01", first, obr, "OBX|1|NM|4548-4^HbA1c^LN||6.1|%||H|||C", mtype="ORU"))
    with Session(engine) as s:  # K1's correction left K2's result alone
        [patient] = find_by_identifier(s, "K2", "HOSP")
        assert [o.value_num for o in timeline(s, patient).observations] == [5.2]
    ingest(engine, msg("R01", second, obr, "OBX|1|NM|4548-4^HbA1c^LN||5.4|%||N|||C", mtype="ORU"))
    with Session(engine) as s:
        for mrn, now, before in (("K1", 6.1, 7.1), ("K2", 5.4, 5.2)):
            [patient] = find_by_identifier(s, mrn, "HOSP")
            assert [o.value_num for o in timeline(s, patient).observations] == [now]
            history = timeline(s, patient, include_superseded=True).observations
            assert sorted(o.value_num for o in history) == sorted([now, before])


def test_a40_moves_history_to_the_survivor(engine: Engine) -> None:
    ingest(engine, msg("R01", PID.format(mrn="OLD"), "OBR|1||F1|X",
                       "OBX|1|NM|2345-7^Glucose^LN||130|mg/dL|||||F", mtype="ORU"),
           msg("A01", PID.format(mrn="OLD"), pv1(f2="O", f3="CLINIC", f19="V7")))
    ingest(engine, msg("A04", PID.format(mrn="NEW")))
    ingest(engine, msg("A40", PID.format(mrn="NEW"), "MRG|OLD^^^HOSP^MR"))
    with Session(engine) as s:
        [survivor] = find_by_identifier(s, "NEW", "HOSP")
        t = timeline(s, survivor)
        assert [o.value_num for o in t.observations] == [130.0]
        assert [e.visit_number for e in t.encounters] == ["V7"]
        assert {i.value for i in t.identifiers} == {"NEW", "OLD"}
        # The old MRN now finds the survivor, and a later result lands there.
        assert [p.id for p in find_by_identifier(s, "OLD", "HOSP")] == [survivor.id]
        merged = s.scalars(select(Patient).where(Patient.id != survivor.id)).one()
        assert merged.merged_into_id == survivor.id
    ingest(engine, msg("R01", PID.format(mrn="OLD"), "OBR|1||F2|X",
                       "OBX|1|NM|2345-7^Glucose^LN||99|mg/dL|||||F", mtype="ORU"))
    with Session(engine) as s:
        [survivor] = find_by_identifier(s, "NEW", "HOSP")
        assert sorted(o.value_num for o in timeline(s, survivor).observations) == [99.0, 130.0]


def test_same_mrn_different_authorities_are_different_patients(engine: Engine) -> None:
    ingest(engine, msg("A04", "PID|1||777^^^NORTH^MR||North^Ann"),
           msg("A04", "PID|1||777^^^SOUTH^MR||South^Bea"))
    with Session(engine) as s:
        assert len(find_by_identifier(s, "777", None)) == 2
        [south] = find_by_identifier(s, "777", "SOUTH")
        assert south.family_name == "South"


def test_second_identifier_finds_the_patient(engine: Engine) -> None:
    ingest(engine, msg("A04", "PID|1||MRN5^^^HOSP^MR~123-45^^^SSA^SS||Doe^Jane"))
    ingest(engine, msg("A08", "PID|1||123-45^^^SSA^SS||Doe-Smith^Jane"))
    with Session(engine) as s:
        [p] = find_by_identifier(s, "MRN5", "HOSP")
        assert p.family_name == "Doe-Smith"
        assert s.scalar(select(Patient.id).where(Patient.id != p.id)) is None


def test_patient_changed_names_the_results(engine: Engine) -> None:
    changes = ingest(engine, msg("R01", PID.format(mrn="N1"), "OBR|1||F1|X",
                                 "OBX|1|NM|4548-4^HbA1c^LN||6.0|%|||||F", mtype="ORU"))
    [change] = changes
    assert change.loincs == ("4548-4",) and change.message_type == "ORU"
    with Session(engine) as s:
        row = s.get(InboxMessage, change.message_id)
        assert row is not None and row.status == "processed"


def test_migrations_build_exactly_the_models_schema(engine: Engine) -> None:
    # An upgraded workstation or department server must end up with the same tables and
    # indexes as the models describe; a model change without its migration fails here.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from app.store.models import Base

    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_feature_cache_reads_new_rows_through_an_index(tmp_path: Path) -> None:
    # Opening a patient asks for their rows after the last id seen; without the
    # (patient_id, id) indexes that scanned and sorted the patient's whole history.
    # Checked on SQLite, the workstation store (PostgreSQL plans by table statistics).
    from app.clinic.features import _DIAGNOSES_AFTER, _RESULTS_AFTER

    engine = open_store(f"sqlite:///{tmp_path / 'plan.db'}")
    with engine.connect() as connection:
        for statement, index in ((_RESULTS_AFTER, "ix_obs_patient_id"),
                                 (_DIAGNOSES_AFTER, "ix_dx_patient_id")):
            sql = str(statement.compile(engine, compile_kwargs={"literal_binds": False}))
            plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + sql, (1, 0)))
            assert index in plan and "TEMP B-TREE" not in plan, plan
    engine.dispose()
