"""Least privilege for a department, on the real PostgreSQL server: `clarion department
init` and `add-workstation` create the roles, grants and row-level security; a
workstation's role reads its department's patients only, appends to the adoption log
only for them, under the names its connection carries, and can neither alter the log nor
read the raw inbox. The roles are the server's own (cluster-wide): each test makes its own
and drops them."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

from app.cli import main
from app.ingest.journal import JournalFollower
from app.ingest.processor import PatientChanged, Processor
from app.store.db import open_store
from tests.app.helpers import hl7_message, store_raw
from tests.conftest import POSTGRES_ENV, _postgres_schema_url

STAMP = "20261201080000+0000"


def pid(mrn: str) -> str:
    return f"PID|1||{mrn}^^^H^MR||Dept^{mrn}||19600101|F"


def arrival(mrn: str, unit: str, control: str) -> str:
    return hl7_message(f"MSH|^~\\&|ADT|H|C|W|{STAMP}||ADT^A04|{control}|P|2.5", pid(mrn),
                       f"PV1|1|E|{unit}^1^1^H")


def result(mrn: str, control: str) -> str:
    return hl7_message(f"MSH|^~\\&|LAB|H|C|W|{STAMP}||ORU^R01|{control}|P|2.5", pid(mrn),
                       f"OBR|1||O{control}|X|||{STAMP}",
                       f"OBX|1|NM|4548-4^HbA1c^LN||6.3|%|||||F|||{STAMP}")


@pytest.fixture
def department() -> Iterator[dict[str, str]]:
    """A store on PostgreSQL with two departments (ED: ER; clinic: CLINIC), a patient in
    each, and a workstation role for each; the roles are dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set; department roles need PostgreSQL")
    tag = uuid.uuid4().hex[:8]
    names = {"group": f"clarion_ws_{tag}", "er": f"ws_er_{tag}", "clinic": f"ws_clinic_{tag}"}
    for url in _postgres_schema_url(base):
        owner = open_store(url)
        store_raw(owner, arrival("ER1", "ER", "A1"), result("ER1", "R1"),
                  arrival("CL1", "CLINIC", "A2"), result("CL1", "R2"))
        assert Processor(owner, journal=True).process_pending() == 4
        db = ["--db", url]
        try:
            for dept, unit, role in (("ED", "ER", "er"), ("CLINIC", "CLINIC", "clinic")):
                assert main(["department", "init", "--department", dept, "--locations", unit,
                             "--group", names["group"], *db]) == 0
                assert main(["department", "add-workstation", names[role], "--department",
                             dept, "--workstation", f"{role}-1", "--group", names["group"],
                             *db]) == 0
            yield {**names, "owner": url,
                   **{f"{r}_url": make_url(url).set(username=names[r]).render_as_string(
                       hide_password=False) for r in ("er", "clinic")}}
        finally:
            owner.dispose()
    admin = create_engine(base)
    with admin.begin() as conn:
        for role in (names["er"], names["clinic"], names["group"]):
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
    admin.dispose()


def mrns(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(text("SELECT value FROM patient_identifiers")))


def patient_id(owner: Engine, mrn: str) -> int:
    with owner.connect() as conn:
        return int(conn.scalar(text("SELECT patient_id FROM patient_identifiers "
                                    "WHERE value = :m"), {"m": mrn}))


def event(patient: int, **claims: str) -> dict:
    return {"alert_id": str(uuid.uuid4()), "event": "generated", "at": datetime.now(UTC),
            "workstation": claims.get("workstation", ""), "clinician": claims.get("clinician", ""),
            "department": claims.get("department", ""), "patient_id": patient, "model": "t2d",
            "label": "t2d", "risk": 0.9, "tier": "high", "engine": "test", "reason": "",
            "comment": "", "detail": json.dumps({"latency_ms": {"total": 5.0}})}


INSERT = text("INSERT INTO alert_events (alert_id, event, at, workstation, clinician, "
              "department, patient_id, model, label, risk, tier, engine, reason, comment, "
              "detail) VALUES (:alert_id, :event, :at, :workstation, :clinician, "
              ":department, :patient_id, :model, :label, :risk, :tier, :engine, :reason, "
              ":comment, :detail)")


def refused(engine: Engine, statement: str, params: dict | None = None) -> str:
    with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
        conn.execute(text(statement) if params is None else INSERT, params or {})
    return str(caught.value.orig)


def test_a_workstation_reads_its_department_only(department: dict[str, str]) -> None:
    owner, er = create_engine(department["owner"]), create_engine(department["er_url"])
    clinic = create_engine(department["clinic_url"])
    try:
        assert mrns(owner) == {"ER1", "CL1"}  # the receiver (the owner) sees everything
        assert mrns(er) == {"ER1"} and mrns(clinic) == {"CL1"}
        with er.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM patients")) == 1
            assert conn.scalar(text("SELECT count(*) FROM observations")) == 1
            assert conn.scalar(text("SELECT count(*) FROM patient_changes")) == 2
        # no raw messages (every department's), no writes to the patient record
        assert "permission denied" in refused(er, "SELECT count(*) FROM inbox_messages")
        assert "permission denied" in refused(er, "UPDATE patients SET family_name = 'X'")
        assert "permission denied" in refused(er, "DELETE FROM observations")
    finally:
        for engine in (owner, er, clinic):
            engine.dispose()


def test_the_adoption_log_takes_its_names_from_the_connection(
        department: dict[str, str]) -> None:
    owner, er = create_engine(department["owner"]), create_engine(department["er_url"])
    try:
        mine, theirs = patient_id(owner, "ER1"), patient_id(owner, "CL1")
        with er.begin() as conn:
            conn.execute(INSERT, event(mine, workstation="clinic-1", department="CLINIC",
                                       clinician="dr-claimed"))
        with owner.connect() as conn:
            row = conn.execute(text("SELECT workstation, department, clinician FROM "
                                    "alert_events")).one()
            summary = conn.execute(text("SELECT workstation, department FROM "
                                        "alert_summary")).one()
        # the role's workstation and department, not the claimed ones; no clinician is
        # mapped to a workstation's role, so the client's stands
        assert tuple(row) == ("er-1", "ED", "dr-claimed")
        assert tuple(summary) == ("er-1", "ED")  # the summary's fold ran as the owner
        # another department's patient: refused by the policy
        assert "row-level security" in refused(er, "", event(theirs))
        # the log stays append-only for the workstation and for the owner alike
        for statement in ("UPDATE alert_events SET tier = 'low'", "DELETE FROM alert_events",
                          "TRUNCATE alert_events"):
            assert "permission denied" in refused(er, statement)
        for statement in ("UPDATE alert_events SET tier = 'low'", "DELETE FROM alert_events",
                          "TRUNCATE alert_events"):
            assert "append-only" in refused(owner, statement)
    finally:
        owner.dispose()
        er.dispose()


def test_a_clinicians_role_is_recorded_as_the_clinician(department: dict[str, str]) -> None:
    role = f"dr_{department['er']}"
    url = make_url(department["owner"])
    assert main(["department", "add-workstation", role, "--department", "ED",
                 "--workstation", "er-2", "--clinician", "dr-okafor", "--group",
                 department["group"], "--db", department["owner"]]) == 0
    owner = create_engine(department["owner"])
    doctor = create_engine(url.set(username=role).render_as_string(hide_password=False))
    try:
        with doctor.begin() as conn:
            conn.execute(INSERT, event(patient_id(owner, "ER1"), clinician="someone-else"))
        with owner.connect() as conn:
            assert tuple(conn.execute(text("SELECT workstation, clinician FROM "
                                           "alert_events")).one()) == ("er-2", "dr-okafor")
    finally:
        owner.dispose()
        doctor.dispose()
        admin = create_engine(os.environ[POSTGRES_ENV])
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
        admin.dispose()


def test_a_workstations_journal_holds_its_department_only(department: dict[str, str]) -> None:
    """The follower, on the workstation's own role, is handed its department's changes and
    none of the other's, old and new."""
    owner = open_store(department["owner"])
    er = create_engine(department["er_url"])
    seen: list[PatientChanged] = []
    follower = JournalFollower(er, seen.append, after_id=0, poll_s=0.1)
    try:
        assert follower.read_new() == 2
        store_raw(owner, result("CL1", "R3"), result("ER1", "R4"))
        Processor(owner, journal=True).process_pending()
        assert follower.read_new() == 1
        assert {c.patient_id for c in seen} == {patient_id(owner, "ER1")}
    finally:
        owner.dispose()
        er.dispose()


def test_bad_requests_name_the_fix(department: dict[str, str],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--db", department["owner"]]
    assert main(["department", "add-workstation", "ws_x", "--department", "NOPE",
                 "--workstation", "x", *db]) == 2
    assert "no department 'NOPE': run `clarion department init" in capsys.readouterr().err
    assert main(["department", "add-workstation", "WS-1; DROP", "--department", "ED",
                 "--workstation", "x", *db]) == 2
    assert "not a usable role name" in capsys.readouterr().err
    assert main(["department", "init", "--department", "ED", "--locations", "ER",
                 "--sql", *db]) == 0
    printed = capsys.readouterr().out
    assert "CREATE POLICY clarion_department ON observations FOR SELECT" in printed
    assert "GRANT INSERT ON alert_events" in printed


def test_sqlite_has_no_roles(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    assert main(["department", "init", "--department", "ED", "--locations", "ER", "--db",
                 f"sqlite:///{tmp_path / 'c.db'}"]) == 2
    assert "need PostgreSQL" in capsys.readouterr().err


def test_doctor_names_the_role_and_its_department(department: dict[str, str]) -> None:
    from app.config import Config
    from app.doctor import check_peers

    config = Config()
    config.department.role = "workstation"
    config.database.url = department["er_url"]
    check = check_peers(config)
    assert check.status == "ok" and f"connected as {department['er']}" in check.detail
    assert "a workstation of ED" in check.detail and "latest change" in check.detail
    config.database.url = department["owner"]  # a workstation on the owner's connection
    check = check_peers(config)
    assert check.status == "warn" and "clarion department add-workstation" in check.detail
    config.department.role = "receiver"
    check = check_peers(config)
    assert check.status == "ok" and "2 workstation role(s)" in check.detail
