"""The firing-anomaly check on a schedule (app/adoption/watch.py): run on its own thread
at start and after each midnight, it names yesterday's broken feed in the log and to its
listeners, and a database it cannot read stops nothing."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from app.adoption.anomaly import Anomaly
from app.adoption.synthetic import write_log
from app.adoption.watch import AFTER_MIDNIGHT_S, AnomalyWatch
from app.store.db import make_engine, open_store

TODAY = date(2026, 11, 26)  # a Thursday


def test_yesterdays_outage_is_logged_and_handed_over(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'log.db'}")
    outage = TODAY - timedelta(days=1)
    write_log(engine, outage, days=40, clinicians=6, feed_outages=[outage])
    clock = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=7)
    watch = AnomalyWatch(engine, start_delay_s=0.0, clock=lambda: clock)
    heard: list[list[Anomaly]] = []
    got = threading.Event()
    watch.on_found.append(lambda found: (heard.append(found), got.set()))
    with caplog.at_level(logging.WARNING, logger="clarion.alerts"):
        watch.start()
        assert got.wait(30)
        watch.stop()
    assert [a.day for a in heard[0]] and {a.day for a in heard[0]} == {outage}
    assert {a.cause for a in heard[0]} == {"feed"}
    assert watch.latest == heard[0] and watch.checked_through == outage
    warnings = [r.getMessage() for r in caplog.records if "firing anomaly" in r.getMessage()]
    assert warnings and f"{outage.isoformat()}: messages received 0" in warnings[0]
    # the next run: ten minutes after the coming midnight
    assert watch.seconds_to_next() == pytest.approx(17 * 3600 + AFTER_MIDNIGHT_S)
    engine.dispose()


def test_an_unreadable_database_is_logged_not_raised(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # no tables
    watch = AnomalyWatch(engine, start_delay_s=0.0)
    with caplog.at_level(logging.WARNING, logger="clarion.alerts"):
        assert watch.check_now() == []
    assert any("could not read the log" in r.getMessage() for r in caplog.records)
    assert watch.checked_through is None
    engine.dispose()


def test_stop_before_the_first_run_is_prompt(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'log.db'}")
    watch = AnomalyWatch(engine)  # the first run a minute after start
    watch.start()
    started = datetime.now(UTC)
    watch.stop()
    assert (datetime.now(UTC) - started).total_seconds() < 2
    assert watch.checked_through is None
    engine.dispose()
