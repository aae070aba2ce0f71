"""Receipt and processing are separate: restart, retry, quarantine, order per patient."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from app.config import Config, IngestConfig
from app.ingest.processor import Processor
from app.store.db import open_store
from app.store.models import InboxMessage, ObservationRecord
from tests.app.helpers import hl7_message, store_raw


def oru(control_id: str, mrn: str, code: str, value: str) -> str:
    return hl7_message(
        f"MSH|^~\\&|LAB|HOSP|CLARION|WS|20260105080000||ORU^R01|{control_id}|P|2.5",
        f"PID|1||{mrn}^^^HOSP^MR||Doe^Jane", f"OBR|1||ORD-{control_id}|X",
        f"OBX|1|NM|{code}^Test^LN||{value}|mg/dL|||||F")


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    engine = open_store(config.database_url)
    yield engine
    engine.dispose()


def _statuses(engine: Engine) -> dict[str, tuple[str, int]]:
    with Session(engine) as s:
        return {r.control_id: (r.status, r.attempts) for r in s.scalars(select(InboxMessage))}


def _break_code(engine: Engine, code: str) -> None:
    """A real database failure for results with this code: a trigger that aborts the insert."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(
                f"CREATE TRIGGER fail_{code.replace('-', '_')} BEFORE INSERT ON observations "
                f"WHEN NEW.code = '{code}' BEGIN SELECT RAISE(ABORT, 'disk says no'); END"))
        else:
            conn.execute(text(
                "CREATE FUNCTION fail_obs() RETURNS trigger AS $$ BEGIN IF NEW.code = "
                f"'{code}' THEN RAISE EXCEPTION 'disk says no'; END IF; RETURN NEW; END $$ "
                "LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER fail_obs BEFORE INSERT ON observations "
                              "FOR EACH ROW EXECUTE FUNCTION fail_obs()"))


def _repair(engine: Engine, code: str) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(f"DROP TRIGGER fail_{code.replace('-', '_')}"))
        else:
            conn.execute(text("DROP TRIGGER fail_obs ON observations"))


def test_received_but_unprocessed_is_processed_after_restart(engine: Engine) -> None:
    store_raw(engine, oru("R1", "P1", "2345-7", "101"), oru("R2", "P2", "2345-7", "102"))
    assert {s for s, _ in _statuses(engine).values()} == {"received"}
    # A new processor, as after a restart, finds them.
    assert Processor(engine).process_pending() == 2
    assert {s for s, _ in _statuses(engine).values()} == {"processed"}


def test_failure_is_retried_then_quarantined_without_blocking_others(engine: Engine) -> None:
    _break_code(engine, "9999-9")
    store_raw(engine, oru("BAD", "P1", "9999-9", "1"), oru("LATER-SAME", "P1", "2345-7", "2"),
              oru("OTHER", "P2", "2345-7", "3"))
    processor = Processor(engine, IngestConfig(max_attempts=3, retry_backoff_s=0))
    processor.process_pending()
    status = _statuses(engine)
    # The other patient's result goes through at once.
    assert status["OTHER"] == ("processed", 1)
    assert status["BAD"] == ("received", 1)
    # Same patient: waits behind the failed message, to keep that patient's order.
    assert status["LATER-SAME"] == ("received", 0)
    processor.process_pending()
    processor.process_pending()
    status = _statuses(engine)
    assert status["BAD"] == ("failed", 3)
    with Session(engine) as s:
        bad = s.scalars(select(InboxMessage).where(InboxMessage.control_id == "BAD")).one()
        assert "disk says no" in bad.last_error
    processor.process_pending()
    assert _statuses(engine)["LATER-SAME"] == ("processed", 1)


def test_transient_failure_recovers_on_retry(engine: Engine) -> None:
    _break_code(engine, "9999-9")
    store_raw(engine, oru("FLAKY", "P1", "9999-9", "1"))
    processor = Processor(engine, IngestConfig(max_attempts=3, retry_backoff_s=0))
    processor.process_pending()
    assert _statuses(engine)["FLAKY"] == ("received", 1)
    _repair(engine, "9999-9")
    processor.process_pending()
    assert _statuses(engine)["FLAKY"] == ("processed", 2)
    with Session(engine) as s:
        assert s.scalars(select(ObservationRecord.value_num)).all() == [1.0]


def test_content_error_is_quarantined_at_once(engine: Engine) -> None:
    no_id = hl7_message("MSH|^~\\&|LAB|HOSP|C|W|2026||ORU^R01|NOID|P|2.5", "PID|1||",
                        "OBX|1|NM|X||1")
    store_raw(engine, no_id)
    Processor(engine).process_pending()
    with Session(engine) as s:
        row = s.scalars(select(InboxMessage)).one()
        assert (row.status, row.attempts) == ("failed", 1)
        assert "PID^1^3" in row.last_error


def test_processor_thread_is_woken_by_the_inbox(engine: Engine) -> None:
    from app.ingest.inbox import DurableInbox
    from integrations.hl7.receipt import assess

    processor = Processor(engine)
    inbox = DurableInbox(engine, on_committed=processor.wake)
    processor.start()
    inbox.start()
    try:
        raw = oru("W1", "P1", "2345-7", "1").encode()
        inbox.submit(raw, "t", assess(raw)).result(10)
        import time
        deadline = time.monotonic() + 10
        while _statuses(engine)["W1"][0] != "processed" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _statuses(engine)["W1"][0] == "processed"
    finally:
        inbox.stop()
        processor.stop()


def test_large_results_go_in_pieces_the_ack_path_can_wait_for(engine: Engine) -> None:
    """On SQLite a chunk of 20-result messages is applied a few messages at a time (a
    piece holds at most `piece_rows` rows: the write lock the ACK path waits for is held
    that long at most), a message larger than that alone; PostgreSQL, where the ACK path
    waits for no processor, takes far more at a time. The lot is processed in order."""
    from app.ingest.processor import POSTGRES_SIZES, SQLITE_SIZES, _pieces

    def panel(n: int, results: int) -> str:
        return hl7_message(
            f"MSH|^~\\&|LAB|HOSP|CLARION|WS|20260105080000||ORU^R01|L{n}|P|2.5",
            f"PID|1||P{n % 7}^^^HOSP^MR||Doe^Jane", f"OBR|1||ORD-{n}|X",
            *(f"OBX|{i}|NM|2345-{i}^Test^LN||{i}|mg/dL|||||F" for i in range(results)))

    sizes = [20] * 9 + [300] + [0, 1] * 20
    ids = store_raw(engine, *(panel(n, size) for n, size in enumerate(sizes)))
    processor = Processor(engine)
    sqlite = engine.dialect.name == "sqlite"
    assert processor._sizes == (SQLITE_SIZES if sqlite else POSTGRES_SIZES)
    content = {i: processor._parse(row) for i, row in zip(ids, _rows(engine, ids), strict=True)}
    for limits in (SQLITE_SIZES, POSTGRES_SIZES):
        pieces = _pieces(ids, content, limits)
        assert [i for piece in pieces for i in piece] == ids
        for piece in pieces:
            rows = sum(1 + len(content[i][0].observations) for i in piece)  # type: ignore[index]
            assert len(piece) <= limits.piece and (rows <= limits.piece_rows or len(piece) == 1)
    # SQLite: 6 x 21 rows, then the 300 alone; PostgreSQL: all 50 messages (550 rows) at once
    assert [len(p) for p in _pieces(ids, content, SQLITE_SIZES)[:3]] == [6, 3, 1]
    assert [len(p) for p in _pieces(ids, content, POSTGRES_SIZES)] == [len(sizes)]
    assert processor.process_pending() == len(sizes)
    assert {s for s, _ in _statuses(engine).values()} == {"processed"}
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(ObservationRecord)) == sum(sizes)


def _rows(engine: Engine, ids: list[int]) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(InboxMessage.__table__).where(
            InboxMessage.id.in_(ids)).order_by(InboxMessage.id)))
