"""The change journal a department's workstations follow: the receiver writes it in the
transaction of each processed message, a follower hands every change over once and in
order, also across a connection the server kills mid-stream (PostgreSQL: LISTEN/NOTIFY
on the real server; SQLite: polling), and old rows are trimmed."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, text

from app.config import Config
from app.ingest.journal import JournalFollower
from app.ingest.processor import PatientChanged, Processor
from app.store.db import make_engine, open_store
from app.store.models import InboxMessage, InboxStatus, PatientChangeRecord, table_of, utcnow
from integrations.mllp import MllpClient
from tests.app.helpers import ack_fields, hl7_message, running_service, wait_processed


def _messages(first: int, count: int) -> list[str]:
    out = []
    for n in range(first, first + count):
        pid = f"PID|1||JR{n:04d}^^^H^MR||Journal^Pat{n}||19700101|F"
        out.append(hl7_message(f"MSH|^~\\&|ADT|H|C|W|20261201080000||ADT^A04|JA{n}|P|2.5", pid,
                               f"PV1|1|E|ER^1^{n % 9}^H||||1234^Doc^A"))
        out.append(hl7_message(f"MSH|^~\\&|LAB|H|C|W|20261201090000||ORU^R01|JR{n}|P|2.5", pid,
                               "OBR|1||O1|X|||20261201085000",
                               "OBX|1|NM|4548-4^HbA1c^LN||6.1|%|||||F|||20261201085000"))
    return out


def _wait(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():  # type: ignore[operator]
        time.sleep(0.02)


def test_a_workstation_follows_every_change_once_in_order(config: Config) -> None:
    config.department.role = "receiver"
    config.ingest.worker = "thread"
    seen: list[PatientChanged] = []
    follower_engine = make_engine(config.database_url)
    with running_service(config) as (service, port):
        follower = JournalFollower(follower_engine, seen.append, poll_s=0.2)
        follower.start()
        with MllpClient("127.0.0.1", port) as client:
            for message in _messages(0, 10):
                assert ack_fields(client.send(message.encode()))["MSA"][1] == "AA"
            wait_processed(service.engine)
            _wait(lambda: len(seen) >= 20)
            if config.database_url.startswith("postgresql"):
                # the server drops the follower's LISTEN connection; the receiver goes on
                _wait(lambda: follower.backend_pid is not None)
                with service.engine.begin() as conn:
                    conn.execute(text("SELECT pg_terminate_backend(:pid)"),
                                 {"pid": follower.backend_pid})
            for message in _messages(10, 10):
                assert ack_fields(client.send(message.encode()))["MSA"][1] == "AA"
            wait_processed(service.engine)
            _wait(lambda: len(seen) >= 40)
        time.sleep(0.5)  # anything doubled would arrive now
        follower.stop()
        with service.engine.connect() as conn:
            processed = conn.scalars(select(InboxMessage.id).where(
                InboxMessage.status == InboxStatus.PROCESSED.value).order_by(InboxMessage.id)
            ).all()
    follower_engine.dispose()
    assert [c.message_id for c in seen] == list(processed) and len(processed) == 40
    if config.database_url.startswith("postgresql"):
        assert follower.reconnects >= 1  # it noticed, came back, and caught up
    arrival, result = seen[0], seen[1]
    assert (arrival.message_type, arrival.trigger, arrival.location) == ("ADT", "A04", "ER^1^0^H")
    assert "1234" in arrival.providers
    assert (result.message_type, result.loincs) == ("ORU", ("4548-4",))
    assert result.processed_at >= result.received_at


def test_old_journal_rows_are_trimmed(config: Config) -> None:
    config.department.role = "receiver"
    engine = open_store(config.database_url)
    with running_service(config) as (service, port):
        with MllpClient("127.0.0.1", port) as client:
            for message in _messages(0, 1):
                client.send(message.encode())
        wait_processed(service.engine)
    changes = table_of(PatientChangeRecord)
    with engine.begin() as conn:
        patient = conn.scalar(select(changes.c.patient_id).limit(1))
        old = utcnow() - timedelta(days=config.ingest.journal_days + 1)
        conn.execute(insert(changes), {
            "patient_id": patient, "message_id": 0, "message_type": "ADT", "trigger": "A08",
            "loincs": "", "location": "", "providers": "", "received_at": old,
            "processed_at": old})
        assert conn.scalar(select(text("count(*)")).select_from(changes)) == 3
    assert Processor(engine, config.ingest).prune_journal(force=True) == 0  # not a receiver
    assert Processor(engine, config.ingest, journal=True).prune_journal(force=True) == 1
    with engine.connect() as conn:
        assert conn.scalar(select(text("count(*)")).select_from(changes)) == 2
    engine.dispose()


@pytest.mark.parametrize("role", ["standalone", "receiver"])
def test_only_a_receiver_writes_the_journal(config: Config, role: str) -> None:
    """A standalone installation processes without journalling: nobody follows it. (In
    the processing worker process, the default, as `clarion listen` runs it.)"""
    config.department.role = role
    changes = table_of(PatientChangeRecord)
    with running_service(config) as (service, port):
        with MllpClient("127.0.0.1", port) as client:
            for message in _messages(0, 2):
                assert ack_fields(client.send(message.encode()))["MSA"][1] == "AA"
        wait_processed(service.engine)
        with service.engine.connect() as conn:
            journalled = conn.scalar(select(text("count(*)")).select_from(changes))
            assert journalled == (4 if role == "receiver" else 0)
            assert conn.scalar(select(text("count(*)")).select_from(table_of(InboxMessage))
                               .where(InboxMessage.status == InboxStatus.PROCESSED.value)) == 4


def test_journal_ids_are_committed_in_order_by_side_by_side_processors(
        config: Config) -> None:
    """Workstations read the journal after the last id they saw, so an id committed after
    a later one would never be read. On PostgreSQL several processors commit side by
    side: a processor's journal rows wait for the lock another's commit holds."""
    import threading

    from app.ingest.processor import _JOURNAL_LOCK
    from tests.app.helpers import store_raw

    engine = open_store(config.database_url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        pytest.skip("SQLite commits one transaction at a time")
    changes = table_of(PatientChangeRecord)
    store_raw(engine, *_messages(0, 1), keyed=True)
    done = threading.Event()
    with engine.connect() as other:  # another processor's batch, about to commit
        transaction = other.begin()
        other.execute(_JOURNAL_LOCK)
        worker = threading.Thread(target=lambda: (
            Processor(engine, config.ingest, journal=True).process_pending(), done.set()))
        worker.start()
        assert not done.wait(1.5)  # its batch waits to journal, uncommitted
        with engine.connect() as conn:
            assert conn.scalar(select(text("count(*)")).select_from(changes)) == 0
            assert conn.scalar(select(text("count(*)")).select_from(table_of(InboxMessage))
                               .where(InboxMessage.status == "processed")) == 0
        transaction.rollback()  # the other's commit: the lock is released
        assert done.wait(30)
        worker.join()
    with engine.connect() as conn:
        assert conn.scalar(select(text("count(*)")).select_from(changes)) == 2
    engine.dispose()
