"""Applying messages together (app/store/patients.apply_many, what the processor does)
leaves the store exactly as applying them one at a time (apply_parsed) does: random
feeds of admissions, transfers, discharges, cancellations, merges, results with
corrections and repeats, diagnoses, several patients in one result, applied in runs of
random length, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from app.store.db import open_store
from app.store.models import (
    DiagnosisRecord,
    Encounter,
    ObservationRecord,
    Patient,
    PatientIdentifier,
    table_of,
)
from app.store.patients import apply_many, apply_parsed, insert_rows
from integrations.hl7.events import ParsedMessage
from integrations.hl7.header import read_header
from integrations.hl7.parse import parse_message
from tests.app.helpers import store_raw
from tests.conftest import POSTGRES_ENV, _postgres_schema_url

TRIGGERS = ["A01", "A04", "A08", "A08", "A02", "A03", "A11", "A13", "A28", "A40"]
CODES = ["4548-4", "2345-7", "39156-5", "8480-6"]


def pid_segment(rng: random.Random, person: int) -> str:
    ids = [f"M{person}^^^HOSP^MR"]
    if rng.random() < 0.4:
        ids.append(f"S{person}^^^SSA^SS")
    rng.shuffle(ids)
    name = rng.choice(["", f"Synthetic^P{person}", f"Synthetic^Q{person}^R"])
    birth = rng.choice(["", "19600101", "19610202"])
    dead = rng.choice(["", "", "", "Y"])
    return (f"PID|1||{'~'.join(ids)}||{name}||{birth}|{rng.choice(['', 'F', 'M'])}"
            f"|||||||||||||||||||||{dead}")


def pv1_segment(rng: random.Random, with_number: bool = True) -> str:
    fields = [""] * 46
    fields[2] = rng.choice(["I", "O", "E", ""])
    fields[3] = rng.choice(["ER^1^A^HOSP", "WARD^2^B^HOSP", "CLINIC^3^C^HOSP", ""])
    fields[6] = rng.choice(["", "ER^1^A^HOSP"])
    fields[7] = rng.choice(["", "D1^Doc^A", "D2^Doc^B"])
    fields[17] = rng.choice(["", "D3^Doc^C"])
    fields[19] = f"V{rng.randrange(4)}" if with_number and rng.random() < 0.8 else ""
    fields[44] = rng.choice(["", "20260105070000"])
    fields[45] = rng.choice(["", "20260106090000"])
    return "PV1" + "|".join(fields)


def adt(rng: random.Random, n: int) -> str:
    trigger = rng.choice(TRIGGERS)
    person = rng.randrange(8)
    segments = [f"MSH|^~\\&|ADT|HOSP|CLARION|WS|20260105080000||ADT^{trigger}|A{n}|P|2.5.1",
                f"EVN|{trigger}|2026010508{n % 60:02d}00", pid_segment(rng, person)]
    if trigger == "A40":
        segments.append(f"MRG|M{rng.choice([p for p in range(8) if p != person])}^^^HOSP^MR")
    else:
        segments.append(pv1_segment(rng))
    for _ in range(rng.randrange(3)):
        segments.append(f"DG1|1||{rng.choice(['E11.9', 'I10'])}^Dx^I10||"
                        f"{rng.choice(['20250101', '20250202'])}|F")
    return "\r".join(segments) + "\r"


def oru(rng: random.Random, n: int) -> str:
    segments = [f"MSH|^~\\&|LAB|HOSP|CLARION|WS|20260105080000||ORU^R01|O{n}|P|2.5.1"]
    for _ in range(1 if rng.random() < 0.85 else 2):  # now and then, two patients
        segments += [pid_segment(rng, rng.randrange(8)), pv1_segment(rng),
                     f"OBR|1|P{rng.randrange(3)}|F{rng.randrange(3)}|24331-1^Panel^LN"
                     "|||20260105070000"]
        for i in range(rng.randrange(1, 6)):
            segments.append(
                f"OBX|{i + 1}|NM|{rng.choice(CODES)}^Test^LN||{rng.uniform(1, 200):.1f}|mg/dL"
                f"|1-200|N|||{rng.choice('PFFCD')}|||2026010507{rng.randrange(3):02d}00")
    return "\r".join(segments) + "\r"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    if request.param == "sqlite":
        urls: list[Any] = [iter([f"sqlite:///{tmp_path / f'{name}.db'}"]) for name in "ab"]
    else:
        base = os.environ.get(POSTGRES_ENV)
        if not base:
            pytest.skip(f"{POSTGRES_ENV} is not set; PostgreSQL tests need a server URL "
                        "(.ci/run sets it)")
        urls = [_postgres_schema_url(base), _postgres_schema_url(base)]
    engines = [open_store(next(url)) for url in urls]
    yield engines[0], engines[1]
    for engine in engines:
        engine.dispose()
    for url in urls:
        next(url, None)  # drops the PostgreSQL schema


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """The store's content without its row ids (the two ways create rows in another
    order): each row named by what it holds and whose it is."""
    p, pi, e, o, d = (table_of(m) for m in (Patient, PatientIdentifier, Encounter,
                                            ObservationRecord, DiagnosisRecord))
    with engine.connect() as conn:
        held: dict[int, list[tuple[str, str]]] = {}
        for row in conn.execute(select(pi.c.patient_id, pi.c.value, pi.c.authority)):
            held.setdefault(row.patient_id, []).append((row.value, row.authority))
        people = {row.id: row for row in conn.execute(select(p))}

        def who(patient_id: int | None) -> tuple[Any, ...]:
            if patient_id is None:
                return ()
            row = people[patient_id]
            return (tuple(sorted(held.get(patient_id, []))), row.family_name, row.given_name,
                    row.birth_date, row.sex, row.deceased)

        visits = {row.id: row for row in conn.execute(select(e))}
        results = {row.id: row for row in conn.execute(select(o))}

        def visit(encounter_id: int | None) -> tuple[Any, ...]:
            if encounter_id is None:
                return ()
            row = visits[encounter_id]
            return (who(row.patient_id), row.visit_number, row.patient_class, row.location,
                    row.prior_location, row.attending, row.referring, row.admitting,
                    row.status, row.admitted_at, row.discharged_at, row.last_event)

        def result(obs_id: int | None) -> tuple[Any, ...]:
            if obs_id is None:
                return ()
            row = results[obs_id]
            return (who(row.patient_id), visit(row.encounter_id), row.message_id,
                    row.result_key, row.set_id, row.value_text, row.status, row.is_current,
                    row.observed_at)

        return {
            "patients": sorted(((*who(i), who(row.merged_into_id))
                                for i, row in people.items()), key=repr),
            "encounters": sorted((visit(i) for i in visits), key=repr),
            "observations": sorted(((result(i), result(row.superseded_by_id))
                                    for i, row in results.items()), key=repr),
            "diagnoses": sorted((
                (who(row.patient_id), visit(row.encounter_id), row.message_id, row.code,
                 row.coding_system, row.diagnosed_at, row.diagnosis_type)
                for row in conn.execute(select(d))), key=repr),
        }


def parsed_feed(engine: Engine, raws: list[str]) -> list[tuple[int, tuple[ParsedMessage, ...]]]:
    ids = store_raw(engine, *raws)
    feed = []
    for message_id, raw in zip(ids, raws, strict=True):
        header = read_header(raw.encode())
        feed.append((message_id, parse_message(header.text, header.message_type,
                                               header.trigger)))
    return feed


@pytest.mark.parametrize("seed", range(6))
def test_together_is_the_same_as_one_by_one(two_stores: tuple[Engine, Engine],
                                            seed: int) -> None:
    rng = random.Random(seed)
    raws = [(adt if rng.random() < 0.45 else oru)(rng, n) for n in range(160)]
    one_by_one, together = two_stores
    for message_id, parsed in parsed_feed(one_by_one, raws):
        with one_by_one.begin() as conn:
            apply_parsed(conn, message_id, parsed)
    feed = parsed_feed(together, raws)
    applied = []
    while feed:
        size = rng.randrange(1, 40)
        run, feed = feed[:size], feed[size:]
        with together.begin() as conn:
            applied += apply_many(conn, run)
    assert len(applied) == len(raws)
    expected, got = dump(one_by_one), dump(together)
    assert len(expected["observations"]) > 200 and len(expected["encounters"]) > 10
    assert any(obs[7] is False for obs, _ in expected["observations"])  # superseded ones
    for table in expected:
        assert got[table] == expected[table], table


def test_the_bulk_insert_stores_what_sqlalchemy_stores(two_stores: tuple[Engine, Engine]
                                                       ) -> None:
    """insert_rows (the processor's insert of results) against SQLAlchemy's own insert of
    the same rows: every column read back equal, times in other zones and repeated ones,
    NULLs, booleans, floats and text with quotes included."""
    plain, bulk = two_stores
    observations = table_of(ObservationRecord)
    ids = store_raw(plain, "MSH|^~\\&|LAB|H|C|W|20260105080000||ORU^R01|X1|P|2.5\r"
                    "PID|1||M1^^^H^MR\r")
    assert store_raw(bulk, "MSH|^~\\&|LAB|H|C|W|20260105080000||ORU^R01|X1|P|2.5\r"
                     "PID|1||M1^^^H^MR\r") == ids
    rng = random.Random(3)
    zones = [timezone.utc, timezone(timedelta(hours=-5)), timezone(timedelta(minutes=330))]
    times = [datetime(2026, 1, 5, rng.randrange(24), rng.randrange(60), rng.randrange(60),
                      rng.choice([0, 123456]), tzinfo=rng.choice(zones)) for _ in range(4)]
    rows = [{"patient_id": 0, "encounter_id": None, "message_id": ids[0],
             "result_key": f"k{i}", "set_id": str(i), "code": rng.choice(CODES),
             "value_text": rng.choice(["", "6.1", "it's \"high\"", "é ü"]),
             "value_num": rng.choice([None, 6.1, -0.5, 1e-9]),
             "observed_at": rng.choice([*times, None]), "recorded_at": times[0],
             "is_current": rng.random() < 0.7} for i in range(50)]
    read = []
    for engine, how in ((plain, "sqlalchemy"), (bulk, "insert_rows")):
        with engine.begin() as conn:
            patient = conn.execute(insert(table_of(Patient)).values(family_name="Synthetic")
                                   .returning(table_of(Patient).c.id)).scalar_one()
            mine = [row | {"patient_id": patient} for row in rows]
            if how == "sqlalchemy":
                conn.execute(insert(observations), mine)
            else:
                insert_rows(conn, observations, mine)
        with engine.connect() as conn:
            read.append([tuple(row)[2:] for row in conn.execute(  # not the ids
                select(observations).order_by(observations.c.id))])
    assert len(read[1]) == 50 and read[1] == read[0]
    # A column whose default is computed per row must be given: never one value for all.
    with bulk.begin() as conn, pytest.raises(ValueError, match="give recorded_at"):
        insert_rows(conn, observations, [{k: v for k, v in rows[0].items()
                                          if k != "recorded_at"}])


@pytest.mark.postgres
def test_a_role_under_row_level_security_inserts_without_copy(
        two_stores: tuple[Engine, Engine]) -> None:
    """COPY FROM refuses a table whose row-level security applies to the role; such a role
    (not a department's receiver, which owns the tables) still stores results."""
    from sqlalchemy import text

    from app.store.patients import _may_copy

    plain, engine = two_stores
    if engine.dialect.name != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    role = f"clarion_rls_{os.getpid()}"
    observations = table_of(ObservationRecord)
    with engine.begin() as conn:
        schema = conn.scalar(text("SELECT current_schema()"))
        conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        conn.execute(text(f"CREATE ROLE {role}"))
        conn.execute(text(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}'))
        conn.execute(text(f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA \"{schema}\" TO {role}"))
        conn.execute(text(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO {role}'))
        conn.execute(text("ALTER TABLE observations ENABLE ROW LEVEL SECURITY"))
        conn.execute(text(f"CREATE POLICY everything ON observations TO {role} "
                          "USING (true) WITH CHECK (true)"))
        patient = conn.execute(insert(table_of(Patient)).values(family_name="Synthetic")
                               .returning(table_of(Patient).c.id)).scalar_one()
    message_id = store_raw(engine, "MSH|^~\\&|LAB|H|C|W|20260105080000||ORU^R01|X1|P|2.5\r"
                           "PID|1||M1^^^H^MR\r")[0]
    row = {"patient_id": patient, "encounter_id": None, "message_id": message_id,
           "result_key": "k", "recorded_at": datetime.now(timezone.utc)}
    try:
        with engine.begin() as conn:
            assert _may_copy(conn, observations)  # the owner: COPY
            insert_rows(conn, observations, [row])
        with engine.begin() as conn:  # the role for this transaction only
            conn.execute(text(f"SET LOCAL ROLE {role}"))
            conn.connection.info.pop("clarion_copy", None)  # asked again, as this role
            assert not _may_copy(conn, observations)
            insert_rows(conn, observations, [row | {"result_key": "as the role"}])
            conn.connection.info.pop("clarion_copy", None)
        with engine.connect() as conn:
            keys = conn.scalars(select(observations.c.result_key).order_by(
                observations.c.id)).all()
        assert keys == ["k", "as the role"]
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP POLICY everything ON observations"))
            conn.execute(text(f"DROP OWNED BY {role}"))
            conn.execute(text(f"DROP ROLE {role}"))
