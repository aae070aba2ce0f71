"""Adoption figures from the log, and the log's append-only guarantee."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, text, update
from sqlalchemy.exc import DBAPIError

from app.adoption.log import AdoptionLog, AlertEventType
from app.adoption.stats import adoption, parse_since
from app.cli import main
from app.config import Config, WorkstationConfig
from app.store.db import open_store
from app.store.models import AlertEvent, Patient

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    engine = open_store(config.database_url)
    with engine.begin() as conn:
        conn.execute(Patient.__table__.insert().values(
            id=1, family_name="X", given_name="Y", sex="F", race="", ethnicity="",
            deceased=False, created_at=T0, updated_at=T0))
    yield engine
    engine.dispose()


def _story(log: AdoptionLog) -> None:
    def at(seconds: float) -> datetime:
        return T0 + timedelta(seconds=seconds)
    # a1: viewed after 10 s, dismissed; later its HbA1c comes back.
    log.record("a1", AlertEventType.GENERATED, 1, at=at(0), model="t2d 1.0.0", risk=0.4)
    log.record("a1", AlertEventType.DISPLAYED, 1, at=at(0.02),
               detail={"latency_ms": {"total": 20.0}})
    log.record("a1", AlertEventType.VIEWED, 1, at=at(10), reason="details")
    log.record("a1", AlertEventType.DISMISSED, 1, at=at(12), reason="not-relevant")
    log.record("a1", AlertEventType.SCREENING_COMPLETED, 1, at=at(86400))
    # a2: viewed after 30 s, acknowledged.
    log.record("a2", AlertEventType.GENERATED, 1, at=at(100), model="t2d 1.0.0", risk=0.3)
    log.record("a2", AlertEventType.DISPLAYED, 1, at=at(100.04),
               detail={"latency_ms": {"total": 40.0}})
    log.record("a2", AlertEventType.VIEWED, 1, at=at(130), reason="dwell")
    log.record("a2", AlertEventType.ACKNOWLEDGED, 1, at=at(131))
    # a3: never looked at.
    log.record("a3", AlertEventType.GENERATED, 1, at=at(200), model="t2d 1.0.0", risk=0.5)
    log.record("a3", AlertEventType.DISPLAYED, 1, at=at(200.03),
               detail={"latency_ms": {"total": 30.0}})
    log.record("a3", AlertEventType.EXPIRED, 1, at=at(380))
    log.record("s1", AlertEventType.SUPPRESSED, 1, at=at(300), reason="rate-limit: 6 …")


def test_headline_figures(engine: Engine) -> None:
    _story(AdoptionLog(engine, WorkstationConfig(clinician="dr.a", name="ws1")))
    figures = adoption(engine, T0 - timedelta(days=1))
    assert (figures["alerts"], figures["displayed"], figures["suppressed"]) == (3, 3, 1)
    assert figures["view_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert figures["median_time_to_view_s"] == pytest.approx(19.98, abs=0.05)
    assert figures["dismissal_reasons"] == {"not-relevant": 1}
    assert figures["outcomes"] == {"dismissed": 1, "acknowledged": 1, "expired": 1}
    assert figures["follow_through_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert figures["suppressed_by_reason"] == {"rate-limit": 1}
    assert figures["latency_ms"]["p50"] == 30.0 and figures["latency_ms"]["p99"] == 40.0


def test_cli_stats(engine: Engine, config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    _story(AdoptionLog(engine, WorkstationConfig()))
    assert main(["stats", "--since", "10000d", "--json", "--db", config.database_url]) == 0
    assert json.loads(capsys.readouterr().out)["alerts"] == 3
    assert main(["stats", "--since", "10000d", "--db", config.database_url]) == 0
    assert "view rate: 67%" in capsys.readouterr().out
    assert main(["stats", "--since", "soon", "--db", config.database_url]) == 2
    assert parse_since("2w") == timedelta(weeks=2)


def test_log_is_append_only(engine: Engine) -> None:
    AdoptionLog(engine, WorkstationConfig()).record("x", AlertEventType.GENERATED, 1, at=T0)
    for statement in (update(AlertEvent).values(reason="edited"), delete(AlertEvent)):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(statement)
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from alert_events")).scalar() == 1


def test_alert_latency_stages() -> None:
    from app.clinic.alerts import Alert
    from app.clinic.scoring import Score

    score = Score("t2d_12m", "Type 2 diabetes", 0.4, "high", "High risk", ())
    alert = Alert("a", 1, "X, Y", "1960-01-01", "M (H)", score, "high", "High risk", "t2d",
                  "onnxruntime-cpu", [], [], T0, {"received_to_processed": 6.0,
                                                   "received_to_scoring": 10.0,
                                                   "features": 1.0, "inference": 0.5,
                                                   "policy": 2.5})
    stages = alert.latency_at(T0 + timedelta(milliseconds=12))
    assert stages["paint"] == pytest.approx(8.0)  # 12 ms since scoring, 4 ms of it computing
    assert stages["total"] == pytest.approx(22.0)  # 10 ms to scoring + 12 ms to the screen
    assert stages["processed_to_scoring"] == pytest.approx(4.0)
