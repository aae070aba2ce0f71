"""The adoption log's writer thread: what the window records is written in order, a
flush waits for it, and a failed write is said (logged), never dropped silently while
the events after it still go."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.adoption.log import AdoptionLog, AlertEventType
from app.config import Config
from app.store.db import open_store
from app.store.models import AlertEvent, Patient


def _patient(engine: Engine, at: datetime) -> None:
    """Patient 1, whom the events are about (the log refers to a stored patient)."""
    with engine.begin() as conn:
        conn.execute(Patient.__table__.insert().values(
            id=1, family_name="X", given_name="Y", sex="F", race="", ethnicity="",
            deceased=False, created_at=at, updated_at=at))


def test_later_writes_keep_order_and_say_what_failed(
        config: Config, caplog: pytest.LogCaptureFixture) -> None:
    engine = open_store(config.database_url)
    at = datetime.now(UTC)
    _patient(engine, at)
    log = AdoptionLog(engine, config.workstation)
    log.record("a1", AlertEventType.GENERATED, 1, at=at, model="t2d 1.0.0")
    for event in (AlertEventType.DISPLAYED, AlertEventType.VIEWED):
        log.record_later("a1", event, 1, at=at)
    log.record_later("a1", AlertEventType.ACKNOWLEDGED, 1, at=at,
                     detail={"not json": object()})  # cannot be written
    log.record_later("a1", AlertEventType.SCREENING_COMPLETED, 1, at=at)
    with caplog.at_level(logging.ERROR, logger="clarion"):
        log.flush()
    with Session(engine) as session:
        written = session.scalars(select(AlertEvent.event).order_by(AlertEvent.id)).all()
    assert written == ["generated", "displayed", "viewed", "screening_completed"]
    assert any("acknowledged of alert a1 not written" in r.getMessage()
               for r in caplog.records)
    log.close()
    engine.dispose()


def test_a_shown_alert_counts_for_the_policy_before_and_after_it_is_written(
        config: Config) -> None:
    """The decision to show goes through the writer thread; the policy's reads (last
    shown, the hourly count) see it at once, and once it is written, once only."""
    engine = open_store(config.database_url)
    at = datetime.now(UTC)
    _patient(engine, at)
    log = AdoptionLog(engine, config.workstation)
    log.record_shown("s1", 1, at=at, model="t2d 1.0.0", risk=0.5, tier="high")
    assert log.last_shown(1, "t2d 1.0.0") == (at, 0.5)
    assert log.shown_since(at) == 1
    log.flush()
    assert log.last_shown(1, "t2d 1.0.0")[1] == 0.5  # type: ignore[index]
    assert log.shown_since(at) == 1
    later = at + timedelta(seconds=1)
    log.record_shown("s2", 1, at=later, model="t2d 1.0.0", risk=0.7)
    assert log.shown_since(at) == 2 and log.last_shown(1, "t2d 1.0.0") == (later, 0.7)
    log.close()
    with Session(engine) as session:
        assert session.scalars(select(AlertEvent.alert_id).order_by(AlertEvent.id)).all() == [
            "s1", "s2"]
    engine.dispose()
