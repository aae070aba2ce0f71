"""Firing anomalies: say which broke — the feed, the mapping or the model — before the
users do (Wright et al.: most CDS malfunctions were caught late, and by users).

Each day is compared with the same weekday of the previous weeks (clinics have weekly
rhythms), as public-health surveillance does (Farrington et al.): a negative binomial
whose overdispersion is estimated from the series itself (quasi-Poisson), and a day is flagged when the
count is both improbable (p < `P_LIMIT`, one tail) and far off (by at least `MIN_CHANGE`
of the expectation), so ordinary noise over months of days does not raise alarms. Three
series say where it broke:

- messages received (the inbox, by day): none or few → **the feed**;
- decisions made (alerts generated + suppressed): few while messages arrive → **the
  mapping** (messages come in but nothing reaches a model);
- alerts shown, and the day's mean risk: moved while decisions are normal → **the model**.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select

from app import logs
from app.adoption.log import AlertEventType
from app.store.models import AlertEvent, InboxMessage, table_of

P_LIMIT = 1e-4
MIN_CHANGE = 0.5  # a flagged day is at least half again, or half below, what was expected
WEEKS = 4  # how many earlier same weekdays make the expectation
MIN_WEEKS = 2  # fewer than this: too little history to judge the day
RISK_Z = 4.0  # the day's mean risk this many standard deviations from the weekdays'
_EVENTS = table_of(AlertEvent)
_INBOX = table_of(InboxMessage)


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One day on which one series broke its pattern."""

    day: date
    series: str  # "messages", "decisions", "shown", "risk"
    observed: float
    expected: float
    p_value: float
    cause: str  # "feed", "mapping", "model"

    @property
    def direction(self) -> str:
        return "drop" if self.observed < self.expected else "jump"

    @property
    def words(self) -> str:
        what = {"feed": "the feed", "mapping": "the mapping", "model": "the model"}[self.cause]
        detail = {"messages": "messages received", "decisions": "results scored",
                  "shown": "alerts shown", "risk": "mean risk"}[self.series]
        fmt = "{:.2f}" if self.series == "risk" else "{:.0f}"
        return (f"{self.day.isoformat()}: {detail} {fmt.format(self.observed)} against "
                f"{fmt.format(self.expected)} expected ({self.direction}; p={self.p_value:.1g})"
                f" — check {what}")


def _per_day(rows: Sequence[Any], start: date, n: int) -> np.ndarray:
    out = np.zeros(n)
    for day, value in rows:
        when = day if isinstance(day, date) else date.fromisoformat(str(day)[:10])
        i = (when - start).days
        if 0 <= i < n:
            out[i] = float(value or 0)
    return out


def _day(engine: Engine, column: Any) -> Any:
    return func.date(column) if engine.dialect.name == "sqlite" else func.date(
        func.timezone("UTC", column))


def daily_series(engine: Engine, start: date, end: date) -> dict[str, np.ndarray]:
    """Per calendar day from `start` to `end` inclusive: messages received (ORU and
    ADT), decisions, alerts shown, and the mean risk of the day's decisions."""
    n = (end - start).days + 1
    since = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    until = since + timedelta(days=n)
    e, i = _EVENTS.c, _INBOX.c
    day_e, day_i = _day(engine, e.at), _day(engine, i.received_at)
    decided = e.event.in_([AlertEventType.GENERATED.value, AlertEventType.SUPPRESSED.value])
    with engine.connect() as conn:
        messages = conn.execute(select(day_i, func.count()).where(
            i.received_at >= since, i.received_at < until,
            i.message_type.in_(["ORU", "ADT"])).group_by(day_i)).all()
        decisions = conn.execute(select(day_e, func.count()).where(
            e.at >= since, e.at < until, decided).group_by(day_e)).all()
        shown = conn.execute(select(day_e, func.count()).where(
            e.at >= since, e.at < until,
            e.event == AlertEventType.DISPLAYED.value).group_by(day_e)).all()
        risk = conn.execute(select(day_e, func.avg(e.risk)).where(
            e.at >= since, e.at < until, decided, e.risk.is_not(None)).group_by(day_e)).all()
    series = {"messages": _per_day(messages, start, n), "decisions": _per_day(decisions, start, n),
              "shown": _per_day(shown, start, n)}
    mean_risk = _per_day(risk, start, n)
    mean_risk[series["decisions"] == 0] = np.nan
    series["risk"] = mean_risk
    return series


def tail(k: int, mean: float, phi: float, lower: bool) -> float:
    """P(X ≤ k) (lower) or P(X ≥ k) for the count model: a negative binomial with this
    mean and variance φ·mean (a Poisson where φ is 1). Exact sums, not a normal
    approximation: the approximation is worst at zero, which is what an outage looks like."""
    if mean <= 0:
        return 1.0 if (lower or k <= 0) else 0.0
    if phi <= 1.0 + 1e-9:
        def log_pmf(i: int) -> float:
            return i * math.log(mean) - mean - math.lgamma(i + 1)
    else:
        r = mean / (phi - 1.0)
        q = r / (r + mean)

        def log_pmf(i: int) -> float:
            return (math.lgamma(i + r) - math.lgamma(r) - math.lgamma(i + 1)
                    + r * math.log(q) + i * math.log1p(-q))

    if lower:
        return min(1.0, sum(math.exp(log_pmf(i)) for i in range(0, k + 1)))
    return max(0.0, 1.0 - sum(math.exp(log_pmf(i)) for i in range(0, k)))


def dispersion(values: np.ndarray, expected: np.ndarray) -> float:
    """How much more the counts vary than a Poisson would (quasi-Poisson φ, at least 1),
    estimated robustly over every day that has an expectation: real feeds are
    overdispersed (a busy day brings more of everything), and a plain Poisson test
    would call every busy Monday an anomaly."""
    keep = expected > 0
    if keep.sum() < 5:
        return 1.0
    squared = (values[keep] - expected[keep]) ** 2 / expected[keep]
    return max(1.0, float(np.median(squared)) / 0.4549)  # the median of χ²₁


def _expectations(values: np.ndarray, begins: int = 0) -> np.ndarray:
    """Each day's expectation: the mean of the same weekday over the previous weeks, from
    the day the log `begins` (before Clarion ran there is nothing to compare with; nan
    where fewer than MIN_WEEKS are there)."""
    out = np.full(len(values), np.nan)
    for index in range(len(values)):
        earlier = [index - 7 * w for w in range(1, WEEKS + 1) if index - 7 * w >= begins]
        if len(earlier) >= MIN_WEEKS:
            out[index] = float(np.mean(values[earlier]))
    return out


def find(series: dict[str, np.ndarray], start: date, first_checked: date) -> list[Anomaly]:
    """The anomalies from `first_checked` on, each with the likeliest cause."""
    n = len(series["messages"])
    activity = np.flatnonzero(series["messages"] + series["decisions"])
    begins = int(activity[0]) if len(activity) else n
    expected = {name: _expectations(series[name], begins)
                for name in ("messages", "decisions", "shown")}
    # The mean risk has no weekly rhythm: each day against the four weeks before it, its
    # spread estimated robustly over the whole series (a few same weekdays are too few).
    risk = series["risk"]
    risk_usual = np.full(n, np.nan)
    for index in range(n):
        window = risk[max(begins, index - 7 * WEEKS):index]
        window = window[~np.isnan(window)]
        if len(window) >= 7:
            risk_usual[index] = float(np.mean(window))
    deviations = (risk - risk_usual)[~np.isnan(risk - risk_usual)]
    risk_spread = max(1.4826 * float(np.median(np.abs(deviations))), 0.01) \
        if len(deviations) else 1.0
    phi = {name: dispersion(series[name][~np.isnan(expected[name])],
                            expected[name][~np.isnan(expected[name])])
           for name in ("messages", "decisions", "shown")}
    found: list[Anomaly] = []
    for index in range((first_checked - start).days, n):
        day = start + timedelta(days=index)
        flags: dict[str, Anomaly] = {}
        for name in ("messages", "decisions", "shown"):
            observed, mean = series[name][index], expected[name][index]
            if math.isnan(mean) or (mean == 0 and observed == 0):
                continue
            p = tail(int(observed), float(mean), phi[name], lower=observed < mean)
            change = abs(observed - mean) / max(mean, 1.0)
            if p < P_LIMIT and change >= MIN_CHANGE:
                flags[name] = Anomaly(day, name, float(observed), float(mean), p, "")
        today, usual = series["risk"][index], risk_usual[index]
        if not math.isnan(today) and not math.isnan(usual) and \
                series["decisions"][index] >= 20:
            z = (today - usual) / risk_spread
            if abs(z) >= RISK_Z:
                p = math.erfc(abs(z) / math.sqrt(2)) / 2
                flags["risk"] = Anomaly(day, "risk", float(today), float(usual), p, "")
        if "messages" in flags:
            cause, keep = "feed", ["messages"]
        elif "decisions" in flags:
            cause, keep = "mapping", ["decisions"]
        else:
            cause, keep = "model", [k for k in ("shown", "risk") if k in flags]
        for name in keep:
            a = flags[name]
            found.append(Anomaly(a.day, a.series, a.observed, a.expected, a.p_value, cause))
    return found


def check(engine: Engine, days: int = 30, today: date | None = None,
          warn: bool = True) -> list[Anomaly]:
    """The anomalies of the last `days` whole days, up to yesterday (today is not over),
    each judged against the weeks before it; each is also logged as a warning (dates and
    counts only, no patient data)."""
    last = (today or datetime.now(UTC).date()) - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    start = first - timedelta(weeks=WEEKS)
    found = find(daily_series(engine, start, last), start, first)
    if warn:
        for anomaly in found:
            logs.alerts.warning("firing anomaly: %s", anomaly.words)
    return found
