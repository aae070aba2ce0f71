"""Processing in a worker process: woken by the inbox, reports back, survives and dies right.

Real child processes (spawned, as on Windows), real SQLite files and PostgreSQL schemas.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.config import Config
from app.ingest.processor import PatientChanged
from app.ingest.worker import WorkerPool, WorkerProcess
from app.store.db import make_engine, open_store
from app.store.models import InboxMessage
from tests.app.helpers import hl7_message, store_raw


def oru(control_id: str, mrn: str) -> str:
    return hl7_message(
        f"MSH|^~\\&|LAB|HOSP|CLARION|WS|20260105080000||ORU^R01|{control_id}|P|2.5",
        f"PID|1||{mrn}^^^HOSP^MR||Doe^Jane", f"OBR|1||ORD-{control_id}|X",
        "OBX|1|NM|2345-7^Glucose^LN||101|mg/dL|||||F")


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    engine = open_store(config.database_url)
    yield engine
    engine.dispose()


def _status(engine: Engine) -> dict[str, str]:
    with Session(engine) as s:
        return {r.control_id: r.status for r in s.scalars(select(InboxMessage))}


def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"not true after {timeout} s")


def test_worker_processes_and_reports_changes_and_logs_to_the_parent(
        engine: Engine, config: Config, caplog: pytest.LogCaptureFixture) -> None:
    changes: list[PatientChanged] = []
    worker = WorkerProcess(engine, config.ingest, changes.append)
    worker.start()
    try:
        assert worker.pid is not None and worker.pid != os.getpid()
        no_id = hl7_message("MSH|^~\\&|LAB|HOSP|C|W|2026||ORU^R01|NOID|P|2.5", "PID|1||",
                            "OBX|1|NM|X||1")
        with caplog.at_level(logging.ERROR, logger="clarion"):
            store_raw(engine, oru("W1", "M1"), no_id)
            worker.wake()
            _until(lambda: _status(engine) == {"W1": "processed", "NOID": "failed"})
            _until(lambda: len(changes) == 1 and any(
                "quarantined" in r.getMessage() for r in caplog.records))
        assert changes[0].loincs == ("2345-7",)
        assert changes[0].message_type == "ORU"
        # The worker's log record came to this process, with its own process id on it.
        [record] = [r for r in caplog.records if "quarantined" in r.getMessage()]
        assert record.process == worker.pid
    finally:
        worker.stop()


def test_a_worker_that_dies_is_replaced_and_nothing_is_lost(
        engine: Engine, config: Config, caplog: pytest.LogCaptureFixture) -> None:
    worker = WorkerProcess(engine, config.ingest)
    worker.start()
    try:
        store_raw(engine, oru("K1", "M1"))
        worker.wake()
        _until(lambda: _status(engine)["K1"] == "processed")
        first = worker.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        with caplog.at_level(logging.ERROR, logger="clarion"):
            _until(lambda: worker.pid != first and worker.restarts == 1)
        assert any("exited unexpectedly" in r.getMessage() for r in caplog.records)
        store_raw(engine, oru("K2", "M2"))
        worker.wake()
        _until(lambda: _status(engine)["K2"] == "processed")
    finally:
        worker.stop()


def test_restart_back_off_doubles_while_workers_die_young_and_starts_over_after_a_stable_run(
        engine: Engine, config: Config, caplog: pytest.LogCaptureFixture) -> None:
    worker = WorkerProcess(engine, config.ingest, restart_delay_s=0.2, stable_s=1.5)
    delays: list[str] = []

    def kill_and_wait_for_the_next() -> None:
        pid = worker.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _until(lambda: worker.pid not in (pid, None))
        delays.append([r.getMessage() for r in caplog.records
                       if "exited unexpectedly" in r.getMessage()][-1].rsplit(" in ", 1)[1])

    with caplog.at_level(logging.ERROR, logger="clarion"):
        worker.start()
        try:
            kill_and_wait_for_the_next()  # died young: the base pause
            kill_and_wait_for_the_next()  # and again: doubled
            kill_and_wait_for_the_next()  # and again: doubled again
            time.sleep(1.8)  # this one runs longer than stable_s ...
            kill_and_wait_for_the_next()  # ... so its death starts the back-off over
            store_raw(engine, oru("B1", "M1"))
            worker.wake()
            _until(lambda: _status(engine)["B1"] == "processed")
        finally:
            worker.stop()
    assert delays == ["0.2 s", "0.4 s", "0.8 s", "0.2 s"]
    assert worker.restarts == 4


ORPHAN = """
import sys, time
from app.config import IngestConfig
from app.store.db import open_store
from app.ingest.worker import WorkerProcess

engine = open_store(sys.argv[1])
worker = WorkerProcess(engine, IngestConfig(feed_timezone="UTC"))
worker.start()
print(worker.pid, flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split(") ")[1][0] not in "ZX"
    except (FileNotFoundError, IndexError):
        return False


# A parent that has stopped reading its worker's reports (its callback hangs) when it is
# killed: the worker's reports fill the pipe between them.
ORPHAN_BEHIND = """
import sys, time
from app.config import IngestConfig
from app.ingest.processor import unprocessed
from app.store.db import open_store
from app.ingest.worker import WorkerProcess
from tests.app.helpers import hl7_message, store_raw

engine = open_store(sys.argv[1])
worker = WorkerProcess(engine, IngestConfig(feed_timezone="UTC"),
                       lambda change: time.sleep(600))
worker.start()
store_raw(engine, *[hl7_message(
    f"MSH|^~\\\\&|ADT|H|C|W|2026||ADT^A08|B{n}|P|2.5",
    f"PID|1||B{n}^^^HOSP^MR||Behind^Pat{n}") for n in range(600)])
worker.wake()
while unprocessed(engine):
    time.sleep(0.05)
time.sleep(1.0)
print(worker.pid, flush=True)
time.sleep(600)
"""


# A parent killed while it holds the write gate (SQLite's; PostgreSQL's is open) with
# messages waiting: the worker waits for a gate nobody will open.
ORPHAN_GATE = """
import sys, time
from app.config import IngestConfig
from app.store.db import open_store, write_gate
from app.ingest.worker import WorkerProcess
from tests.app.helpers import hl7_message, store_raw

engine = open_store(sys.argv[1])
store_raw(engine, *[hl7_message(
    f"MSH|^~\\\\&|ADT|H|C|W|2026||ADT^A08|G{n}|P|2.5",
    f"PID|1||G{n}^^^HOSP^MR||Gate^Pat{n}") for n in range(5)])
with write_gate(engine).urgent():
    worker = WorkerProcess(engine, IngestConfig(feed_timezone="UTC"))
    worker.start()
    worker.wake()
    time.sleep(2.0)
    print(worker.pid, flush=True)
    time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("script", [ORPHAN, ORPHAN_BEHIND, ORPHAN_GATE],
                         ids=["idle", "reports-unread", "gate-held"])
def test_worker_exits_when_its_parent_is_killed(db_url: str, tmp_path: Path,
                                                script: str) -> None:
    parent = subprocess.Popen([sys.executable, "-c", script, db_url], stdout=subprocess.PIPE,
                              cwd=Path(__file__).parents[2])
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _running(child)
        parent.kill()  # kill -9: no clean-up runs in the parent
        parent.wait(10)
        _until(lambda: not _running(child), timeout=10)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()


def test_only_the_inbox_waits_for_the_disk(db_url: str) -> None:
    """The inbox commits durably (the ACK promises it); the worker's engine, which writes
    only what is rebuilt from the inbox, commits without waiting for the disk."""
    durable, derived = open_store(db_url), make_engine(db_url, derived_only=True)
    try:
        if durable.dialect.name == "sqlite":
            query, wanted = "PRAGMA synchronous", (2, 1)  # FULL, NORMAL
        else:
            query, wanted = "SHOW synchronous_commit", ("on", "off")
        with durable.connect() as a, derived.connect() as b:
            assert (a.exec_driver_sql(query).scalar(), b.exec_driver_sql(query).scalar()) == wanted
    finally:
        durable.dispose()
        derived.dispose()


# -- several workers: each its share of the patients -------------------------------------

def _visits(mrns: list[str]) -> list[str]:
    """Per patient an admission, then an update renaming them: the name left shows the
    order they were applied in."""
    out = []
    for mrn in mrns:
        for n, (event, last) in enumerate((("A04", "First"), ("A08", "Second"))):
            out.append(hl7_message(
                f"MSH|^~\\&|ADT|HOSP|C|W|20260105080000||ADT^{event}|{mrn}-{n}|P|2.5",
                f"PID|1||{mrn}^^^HOSP^MR||{last}^Pat||19600101|F", "PV1|1|O|CLINIC^1^1"))
    return out


def _names(engine: Engine) -> dict[str, str]:
    from app.store.models import Patient, PatientIdentifier

    with Session(engine) as s:
        rows = s.execute(select(PatientIdentifier.value, Patient.family_name).join(
            Patient, Patient.id == PatientIdentifier.patient_id)).all()
    return dict(rows)


def test_shards_come_from_the_patient_key_at_receipt() -> None:
    from app import logs
    from app.ingest.inbox import SHARDS, shard_of

    assert shard_of("p:0123456789ab") == 11
    assert shard_of("") == 0  # no patient read at receipt: shard 0, worker 1's
    shards = {shard_of(logs.pseudonym(f"M{i}", "HOSP")) for i in range(200)}
    assert shards == set(range(SHARDS))


def test_each_processor_takes_its_share_of_the_patients_in_order(engine: Engine) -> None:
    from app.ingest.inbox import shard_of
    from app.ingest.processor import Processor

    mrns = [f"S{i:03d}" for i in range(24)]
    store_raw(engine, *_visits(mrns), keyed=True)
    with Session(engine) as s:
        rows = s.scalars(select(InboxMessage)).all()
    assert all(r.patient_key and r.shard == shard_of(r.patient_key) for r in rows)
    shards = {r.control_id.split("-")[0]: r.shard for r in rows}
    odd = {m for m, shard in shards.items() if shard % 2 == 1}
    assert 0 < len(odd) < len(mrns)  # both workers have patients
    Processor(engine, share=(0, 2)).process_pending()
    left = {c.split("-")[0] for c, status in _status(engine).items() if status == "received"}
    assert left == odd  # the other share's, untouched
    Processor(engine, share=(1, 2)).process_pending()
    assert set(_status(engine).values()) == {"processed"}
    assert _names(engine) == {m: "Second" for m in mrns}  # each patient's in order


def test_a_pool_of_workers_processes_every_patient_on_postgresql(
        engine: Engine, config: Config) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("several workers are for a PostgreSQL store (SQLite: see the next test)")
    from app.ingest.journal import JournalFollower

    changes: list[PatientChanged] = []
    followed: list[PatientChanged] = []
    pool = WorkerPool(engine, config.ingest, 2, changes.append, journal=True)
    follower = JournalFollower(engine, followed.append, poll_s=0.05)
    follower.start()
    pool.start()
    try:
        mrns = [f"P{i:03d}" for i in range(30)]
        store_raw(engine, *_visits(mrns), keyed=True)
        pool.wake()
        _until(lambda: set(_status(engine).values()) == {"processed"})
        _until(pool.settled)
        assert len(changes) == 2 * len(mrns)
        # A workstation following the journal gets every change once, each patient's in
        # order, although the two workers commit side by side.
        _until(lambda: len(followed) >= len(changes))
        time.sleep(0.3)
        assert sorted(c.message_id for c in followed) == sorted(c.message_id for c in changes)
        by_patient: dict[int, list[str]] = {}
        for change in followed:
            by_patient.setdefault(change.patient_id, []).append(change.trigger)
        assert set(map(tuple, by_patient.values())) == {("A04", "A08")}
        assert _names(engine) == {m: "Second" for m in mrns}
        # Both took part, in processes of their own.
        assert all(w._sent is not None and w._sent.value > 0 for w in pool.workers)
        assert len({w.pid for w in pool.workers}) == 2
    finally:
        follower.stop()
        pool.stop()


def test_two_workers_on_postgresql_by_default_and_one_on_sqlite(
        config: Config, caplog: pytest.LogCaptureFixture) -> None:
    from app.ingest.service import IngestService

    engine = open_store(config.database_url)
    postgres = engine.dialect.name == "postgresql"
    try:
        with caplog.at_level(logging.WARNING, logger="clarion"):
            default = IngestService(config, engine).processor  # workers = 0: by the store
            assert not caplog.records
            config.ingest.workers = 2
            asked = IngestService(config, engine).processor
        if postgres:
            assert isinstance(default, WorkerPool) and len(default.workers) == 2
            assert isinstance(asked, WorkerPool) and len(asked.workers) == 2
        else:
            assert isinstance(default, WorkerProcess) and isinstance(asked, WorkerProcess)
            assert any("workers = 2 is for a PostgreSQL store" in r.getMessage()
                       for r in caplog.records)
    finally:
        engine.dispose()


def test_the_receiver_tends_its_tables_where_the_server_does_not(
        engine: Engine, config: Config) -> None:
    from sqlalchemy import text

    from app.ingest.processor import Processor

    if engine.dialect.name != "postgresql":
        pytest.skip("VACUUM is PostgreSQL's (SQLite reuses its pages)")
    with engine.connect() as conn:
        if conn.scalar(text("SHOW autovacuum")) == "on":
            pytest.skip("this server vacuums by itself (autovacuum on): nothing to do")
    store_raw(engine, *_visits(["V001", "V002"]), keyed=True)
    processor = Processor(engine, config.ingest)
    processor.process_pending()
    assert not processor.tend_tables()  # not after four messages
    assert not Processor(engine, config.ingest, share=(1, 2)).tend_tables(force=True)
    assert processor.tend_tables(force=True)  # processor 1 of n, on its turn

    def tended() -> bool:  # the inbox vacuumed, the tables processing reads analysed
        with engine.connect() as conn:
            return conn.scalar(text(
                "SELECT bool_and(CASE WHEN relname = 'inbox_messages' "
                "THEN last_vacuum IS NOT NULL ELSE last_analyze IS NOT NULL END) "
                "FROM pg_stat_user_tables WHERE relid IN ('inbox_messages'::regclass, "
                "'observations'::regclass, 'encounters'::regclass, 'patients'::regclass, "
                "'patient_identifiers'::regclass, 'diagnoses'::regclass)")) is True
    _until(tended, timeout=15)
