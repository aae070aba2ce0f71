"""The durable inbox's writer: one statement a batch, resends found by their conflict, and
a fresh connection after a failed one. On SQLite and the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.config import Config
from app.ingest.inbox import DurableInbox
from app.store.db import open_store
from app.store.models import InboxMessage, InboxStatus
from integrations.hl7.receipt import assess
from tests.app.helpers import hba1c_result, store_raw


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    engine = open_store(config.database_url)
    yield engine
    engine.dispose()


def _rows(engine: Engine) -> list[InboxMessage]:
    with Session(engine) as session:
        return list(session.scalars(select(InboxMessage).order_by(InboxMessage.id)))


def test_a_batch_with_resends_stores_each_message_once(engine: Engine) -> None:
    [earlier] = store_raw(engine, hba1c_result("OLD"))
    inbox = DurableInbox(engine)
    # Queued before the writer starts, so that they are all one batch.
    messages = [hba1c_result("A"), hba1c_result("B"), hba1c_result("A"), hba1c_result("A", value="7.0"), hba1c_result("OLD")]
    futures = [inbox.submit(raw, "test", assess(raw)) for raw in messages]
    inbox.start()
    try:
        receipts = [future.result(30) for future in futures]
    finally:
        inbox.stop()
    assert [r.duplicate for r in receipts] == [False, False, True, False, True]
    first_a, b, resent_a, reused_id, old = (r.message_id for r in receipts)
    assert resent_a == first_a and old == earlier
    assert len({first_a, b, reused_id, earlier}) == 4
    assert all(r.status is InboxStatus.RECEIVED and r.received_at.tzinfo is UTC
               for r in receipts)
    rows = {row.id: row for row in _rows(engine)}
    assert len(rows) == 4
    assert (rows[first_a].duplicate_count, rows[earlier].duplicate_count) == (1, 1)
    assert (rows[b].duplicate_count, rows[reused_id].duplicate_count) == (0, 0)
    assert rows[reused_id].raw == messages[3] and rows[reused_id].control_id == "A"


def test_a_broken_connection_fails_one_batch_and_the_next_gets_a_fresh_one(
        engine: Engine) -> None:
    inbox = DurableInbox(engine)
    inbox.start()
    try:
        inbox.submit(hba1c_result("C1"), "test", assess(hba1c_result("C1"))).result(30)
        # The writer holds its connection between batches; break it under the writer.
        inbox._insert._raw.dbapi_connection.close()
        failed = inbox.submit(hba1c_result("C2"), "test", assess(hba1c_result("C2")))
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
            failed.result(30)
        resent = inbox.submit(hba1c_result("C2"), "test", assess(hba1c_result("C2"))).result(30)
    finally:
        inbox.stop()
    assert not resent.duplicate
    assert [row.control_id for row in _rows(engine)] == ["C1", "C2"]
