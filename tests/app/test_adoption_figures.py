"""The adoption figures and the firing-anomaly check, against a generated 90-day log whose
true rates are known (app/adoption/synthetic.py): two clinicians' weeks, a latency/viewing
relation built in, and two injected outage days — one where the feed stopped, one where
messages came but nothing was scored. SQLite and the real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine

from app.adoption import anomaly
from app.adoption.figures import (
    Filters,
    by_dimension,
    by_period,
    comments,
    figures,
    load_alerts,
    load_suppressed,
    view_rate_by_latency,
    wilson,
)
from app.adoption.synthetic import FOLLOW_THROUGH, OUTCOMES, VIEW_BY_LATENCY, write_log
from app.config import Config
from app.store.db import open_store

END = date(2026, 11, 27)  # a Friday
FEED_DOWN = date(2026, 11, 11)  # a Wednesday
MAPPING_DOWN = date(2026, 10, 20)  # a Tuesday


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, object]]:
    """One generated log for the module, on SQLite (PostgreSQL has its own test below)."""
    engine = open_store(f"sqlite:///{tmp_path_factory.mktemp('adoption') / 'log.db'}")
    log = write_log(engine, END, days=90, feed_outages=[FEED_DOWN],
                    mapping_outages=[MAPPING_DOWN])
    yield engine, log
    engine.dispose()


def _all(engine: Engine) -> Filters:
    return Filters(since=datetime.combine(END - timedelta(days=89), datetime.min.time(),
                                          tzinfo=UTC))


def test_headline_figures_recover_the_true_rates(logged: tuple[Engine, object]) -> None:
    engine, log = logged
    table = load_alerts(engine, _all(engine))
    assert len(table) == log.alerts > 1000  # type: ignore[attr-defined]
    f = figures(table, load_suppressed(engine, _all(engine)))
    assert f.displayed == f.alerts
    expected_view = np.mean(list(VIEW_BY_LATENCY.values()))
    assert f.view_rate == pytest.approx(expected_view, abs=0.04)
    assert f.view_rate_ci[0] < f.view_rate < f.view_rate_ci[1]
    shares = {k: v / f.displayed for k, v in f.outcomes.items()}
    for outcome, share in OUTCOMES.items():
        assert shares[outcome] == pytest.approx(share, abs=0.04), outcome
    assert f.follow_through == pytest.approx(FOLLOW_THROUGH, abs=0.04)
    assert f.yield_rate == pytest.approx(0.3, abs=0.06)
    # Burden: per clinician per working day, E[X | X ≥ 1] for Poisson(5) = 5.03.
    assert f.burden == pytest.approx(5.0 / (1 - np.exp(-5.0)), abs=0.3)
    assert 1 <= f.time_to_view_s["median"] <= 20 and f.time_to_view_s["p90"] <= 20
    assert f.suppressed["recently-shown"] > f.alerts  # 1.5 per alert
    assert sum(f.dismissal_reasons.values()) == f.outcomes["dismissed"]
    assert 0 < f.quick_dismissals < f.outcomes["dismissed"]  # some within 3 s: no decision


def test_view_rate_by_latency_recovers_the_relation(logged: tuple[Engine, object]) -> None:
    engine, _ = logged
    buckets = view_rate_by_latency(load_alerts(engine, _all(engine)))
    assert [b.label for b in buckets] == ["< 25 ms", "25–50 ms", "50–100 ms", "> 100 ms"]
    for bucket, true in zip(buckets, VIEW_BY_LATENCY.values(), strict=True):
        assert bucket.shown > 200
        assert bucket.rate == pytest.approx(true, abs=0.08)
        assert bucket.ci[0] <= bucket.rate <= bucket.ci[1]
        assert bucket.ci[1] - bucket.ci[0] < 0.15
    rates = [b.rate for b in buckets]
    assert rates == sorted(rates, reverse=True)  # slower banners are read less


def test_breakdowns_filters_and_periods(logged: tuple[Engine, object]) -> None:
    engine, _ = logged
    everything = _all(engine)
    table = load_alerts(engine, everything)
    per = by_dimension(table, "clinician")
    assert sorted(per) == ["dr0", "dr1", "dr2", "dr3"]
    assert sum(f.alerts for f in per.values()) == len(table)
    one = load_alerts(engine, Filters(since=everything.since, clinician="dr2"))
    assert len(one) == per["dr2"].alerts
    high = load_alerts(engine, Filters(since=everything.since, tier="high"))
    assert 0.3 < len(high) / len(table) < 0.5
    days = by_period(table, "day")
    assert all(d.weekday() < 5 for d in days)  # nobody works weekends
    assert FEED_DOWN not in days and MAPPING_DOWN not in days
    weeks = by_period(table, "week")
    assert all(w.weekday() == 0 for w in weeks) and 12 <= len(weeks) <= 14
    with pytest.raises(ValueError, match="--by takes one of"):
        by_dimension(table, "patient")


def test_comment_review_queue(logged: tuple[Engine, object]) -> None:
    engine, _ = logged
    queue = comments(engine, _all(engine), limit=50)
    assert queue and all(c[3] for c in queue)
    assert [c[0] for c in queue] == sorted((c[0] for c in queue), reverse=True)


def test_anomaly_check_finds_the_injected_days_and_no_others(
        logged: tuple[Engine, object]) -> None:
    engine, _ = logged
    found = anomaly.check(engine, days=60, today=END + timedelta(days=1), warn=False)
    by_day = {(a.day, a.cause) for a in found}
    assert by_day == {(FEED_DOWN, "feed"), (MAPPING_DOWN, "mapping")}, found
    feed = next(a for a in found if a.day == FEED_DOWN)
    assert feed.series == "messages" and feed.observed == 0 and feed.direction == "drop"
    assert "check the feed" in feed.words


def test_a_model_that_stops_firing_is_named(config: Config) -> None:
    """Messages and decisions as usual, but the model gives no risk and nothing is shown:
    the model (not the feed, not the mapping)."""
    engine = open_store(config.database_url)
    quiet = END - timedelta(days=2)  # a Wednesday
    write_log(engine, END, days=50, seed=5, model_outages=[quiet])
    found = anomaly.check(engine, days=21, today=END + timedelta(days=1), warn=False)
    engine.dispose()
    assert [(a.day, a.cause, a.series) for a in found] == [(quiet, "model", "shown")]


def test_figures_on_postgresql_match_sqlite(config: Config, logged: tuple[Engine, object]
                                            ) -> None:
    """The same generated log on the configured store (the real PostgreSQL server too)
    gives the same figures as on SQLite: the SQL pivot is dialect-neutral."""
    engine = open_store(config.database_url)
    write_log(engine, END, days=30, seed=21)
    other = open_store(f"sqlite:///{config.data_dir}/same.db")
    write_log(other, END, days=30, seed=21)
    since = Filters(since=datetime.combine(END - timedelta(days=29), datetime.min.time(),
                                           tzinfo=UTC))
    a, b = figures(load_alerts(engine, since)), figures(load_alerts(other, since))
    engine.dispose()
    other.dispose()
    assert a == b and a.alerts > 100


def test_wilson_interval() -> None:
    assert wilson(0, 0) is None
    low, high = wilson(45, 100)  # type: ignore[misc]
    assert low == pytest.approx(0.3561, abs=1e-3) and high == pytest.approx(0.5475, abs=1e-3)
