"""The per-alert summary the database keeps from the adoption log (app/store/summary.py):
after any events, in any order, it holds what pivoting the events gives — through the
trigger, and through the migration's backfill of a log written before it. SQLite and the
real PostgreSQL server."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, insert, select

from app.adoption.log import AlertEventType
from app.adoption.synthetic import write_log
from app.store import summary
from app.store.db import MIGRATIONS, make_engine, migrate, writer
from app.store.models import AlertEvent, AlertSummary, Patient, table_of

END = date(2026, 11, 27)
TERMINAL = {"acknowledged", "dismissed", "snoozed", "expired"}


def _ms(at: datetime) -> float:
    return at.replace(tzinfo=UTC).timestamp() * 1000.0 if at.tzinfo is None \
        else at.timestamp() * 1000.0


def pivot(engine: Engine) -> dict[str, dict[str, Any]]:
    """Each alert's row, worked out in Python from every event (what the trigger keeps)."""
    with engine.connect() as conn:
        events = conn.execute(select(table_of(AlertEvent)).order_by(AlertEvent.id)).all()
    out: dict[str, dict[str, Any]] = defaultdict(dict)

    def keep(alert: dict[str, Any], key: str, value: Any, pick: Any) -> None:
        if value is not None:
            alert[key] = value if alert.get(key) is None else pick(alert[key], value)

    for e in events:
        if e.event == "suppressed":
            continue
        alert = out[e.alert_id]
        ms = _ms(e.at)
        for event, key in (("generated", "generated_ms"), ("displayed", "displayed_ms"),
                           ("viewed", "viewed_ms"), ("screening_completed", "screened_ms")):
            if e.event == event:
                keep(alert, key, ms, min)
        try:
            detail = json.loads(e.detail)
        except ValueError:
            detail = {}
        if e.event in TERMINAL:
            keep(alert, "finished_ms", ms, min)
            words = e.event + (f" {e.reason}" if e.event == "expired" and e.reason else "")
            keep(alert, "outcome", words, max)
        if e.event == "dismissed":
            keep(alert, "reason", e.reason, max)
        if e.event == "displayed":
            keep(alert, "latency_ms", (detail.get("latency_ms") or {}).get("total"), max)
        if e.event == "screening_completed" and detail.get("abnormal") is not None:
            keep(alert, "abnormal", float(detail["abnormal"]), max)
        if e.event == "generated":
            for name in summary.DIMENSIONS:
                keep(alert, name, getattr(e, name), max)
    return out


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(table_of(AlertSummary))).mappings().all()
    return {r["alert_id"]: {k: v for k, v in r.items() if k != "alert_id" and v is not None}
            for r in rows}


def assert_same(got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    assert got.keys() == want.keys()
    for alert_id, row in want.items():
        assert got[alert_id].keys() == row.keys(), alert_id
        for key, value in row.items():
            if isinstance(value, float):
                assert math.isclose(got[alert_id][key], value, abs_tol=0.5), (alert_id, key)
            else:
                assert got[alert_id][key] == value, (alert_id, key)


def _patient(engine: Engine) -> int:
    now = datetime.now(UTC)
    with engine.begin() as conn:
        return int(conn.execute(insert(table_of(Patient)).returning(table_of(Patient).c.id), {
            "family_name": "SYNTHETIC", "given_name": "Summary", "sex": "F", "race": "",
            "ethnicity": "", "deceased": False, "created_at": now, "updated_at": now,
        }).scalar_one())


def _awkward_events(engine: Engine) -> None:
    """Events a real log can hold: out of order, twice, expired unseen, a detail that is
    not JSON, an alert whose generation is not in the log, suppressed decisions."""
    patient = _patient(engine)
    t = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    base = {"workstation": "ws-x", "clinician": "dr-x", "department": "ER",
            "patient_id": patient, "model": "t2d 1.0.0", "label": "t2d_12m", "risk": 0.8,
            "tier": "high", "engine": "onnxruntime-cpu", "reason": "", "comment": ""}

    def ev(alert: str, kind: str, seconds: float, detail: Any = None, **extra: Any) -> None:
        text = detail if isinstance(detail, str) else json.dumps(detail or {})
        with engine.begin() as conn:
            conn.execute(insert(table_of(AlertEvent)), {
                **base, **extra, "alert_id": alert, "event": kind, "detail": text,
                "at": t + timedelta(seconds=seconds)})

    ev("late-first", "viewed", 5)  # the viewing written before the display
    ev("late-first", "displayed", 2, {"latency_ms": {"total": 17.5}})
    ev("late-first", "generated", 0, tier="elevated")
    ev("late-first", "dismissed", 9, reason="not-relevant", comment="=1+1")
    ev("late-first", "dismissed", 12, reason="already-screened")  # twice: the larger
    ev("late-first", "screening_completed", 86400, {"abnormal": True})
    ev("unseen", "generated", 0)
    ev("unseen", "expired", 600, reason="unseen")
    ev("bad-json", "generated", 0)
    ev("bad-json", "displayed", 1, "{not json")
    ev("bad-json", "screening_completed", 100, {"abnormal": False})
    ev("orphan", "acknowledged", 30)  # its generation is before the log began
    ev("quiet", "suppressed", 0, reason="recently-shown: shown earlier")


@pytest.mark.parametrize("order", ["generated", "awkward"])
def test_the_trigger_keeps_what_the_events_say(db_url: str, order: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    if order == "generated":
        write_log(engine, END, days=20, clinicians=3, with_messages=False, seed=2)
    else:
        _awkward_events(engine)
    want = pivot(engine)
    assert_same(stored(engine), want)
    if order == "awkward":
        got = stored(engine)
        assert "quiet" not in got  # suppressed decisions are not alerts
        assert got["late-first"]["tier"] == "elevated"
        assert got["late-first"]["outcome"] == "dismissed"
        assert got["late-first"]["reason"] == "not-relevant"  # max of the two reasons
        assert got["late-first"]["latency_ms"] == 17.5
        assert got["late-first"]["abnormal"] == 1.0
        assert got["unseen"]["outcome"] == "expired unseen"
        assert "latency_ms" not in got["bad-json"]  # a broken detail loses no event
        assert got["bad-json"]["abnormal"] == 0.0
        assert "generated_ms" not in got["orphan"]
    engine.dispose()


def test_the_migration_summarises_a_log_written_before_it(db_url: str) -> None:
    engine = make_engine(db_url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with writer(engine).begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "0005")
    write_log(engine, END, days=15, clinicians=2, with_messages=False, seed=4)
    _awkward_events(engine)
    want = pivot(engine)
    assert len(want) > 50
    migrate(engine)  # 0006 and on
    assert_same(stored(engine), want)
    # and keeps it from then on
    _awkward_events(engine)  # the same alert ids again: later, larger or equal
    assert_same(stored(engine), pivot(engine))
    engine.dispose()


def test_the_summary_knows_every_kind_of_event() -> None:
    """Each event the log can hold lands in a column or is left out on purpose
    (suppressed decisions are not alerts); a new kind must be placed here first."""
    used = {summary.GENERATED, summary.DISPLAYED, summary.VIEWED,
            summary.SCREENING_COMPLETED, summary.DISMISSED, summary.SUPPRESSED,
            *summary.TERMINAL}
    assert used == {t.value for t in AlertEventType}
