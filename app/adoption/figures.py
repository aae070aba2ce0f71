"""Adoption figures from the alert log (no Qt): one computation for the dashboard,
`clarion stats` and the committee report.

What the literature on clinical decision support says admins need: alert burden per
clinician per working day; whether alerts are read (view rate, time to view, dwell — a
dismissal within `QUICK_S` of appearing is not a decision); what clinicians answer
(outcomes, coded dismissal reasons, the free-text comments); whether the recommended
screening was done (follow-through) and how often it came back abnormal (yield); and
latency, with the view rate by latency bucket and its confidence interval.

The log is read once per call, one row per alert (`alert_summary`, which the database
keeps from the events), then counted with NumPy; nothing here writes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.sql.elements import ColumnElement

from app.adoption.log import AlertEventType
from app.store.models import AlertEvent, AlertSummary, table_of

QUICK_S = 3.0  # a dismissal sooner than this after the banner appeared is not a decision
FOLLOW_DAYS = 90  # a recommended test resulted within this many days counts as done
LATENCY_BUCKETS = ((0.0, 25.0), (25.0, 50.0), (50.0, 100.0), (100.0, math.inf))
DIMENSIONS = ("department", "workstation", "clinician", "model", "tier")
_EVENTS = table_of(AlertEvent)
_SUMMARY = table_of(AlertSummary)


@dataclass(frozen=True, slots=True)
class Filters:
    """Which alerts count: a period and any of the dimensions (exact values)."""

    since: datetime
    until: datetime | None = None
    department: str | None = None
    workstation: str | None = None
    clinician: str | None = None
    model: str | None = None
    tier: str | None = None

    def where(self) -> list[ColumnElement[bool]]:
        clauses: list[ColumnElement[bool]] = [_EVENTS.c.at >= self.since]
        if self.until is not None:
            clauses.append(_EVENTS.c.at < self.until)
        for name in DIMENSIONS:
            value = getattr(self, name)
            if value is not None:
                clauses.append(_EVENTS.c[name] == value)
        return clauses


@dataclass
class AlertTable:
    """One row per alert generated in the period (struct of arrays)."""

    generated: np.ndarray  # datetime64[ms], UTC
    displayed: np.ndarray  # NaT if never painted
    viewed: np.ndarray
    finished: np.ndarray  # the first of acknowledged, dismissed, snoozed, expired
    screened: np.ndarray  # screening_completed
    outcome: np.ndarray  # str: acknowledged / dismissed / snoozed / expired / expired unseen / open
    reason: np.ndarray  # dismissal reason
    latency_ms: np.ndarray  # frame received → painted (nan if unknown)
    abnormal: np.ndarray  # float: 1 abnormal, 0 normal, nan unknown or not screened
    department: np.ndarray
    workstation: np.ndarray
    clinician: np.ndarray
    model: np.ndarray
    tier: np.ndarray

    def __len__(self) -> int:
        return len(self.generated)

    def take(self, mask: np.ndarray) -> AlertTable:
        return AlertTable(**{name: getattr(self, name)[mask]
                             for name in self.__dataclass_fields__})


@dataclass
class Figures:
    """The headline figures for one set of alerts."""

    alerts: int
    displayed: int
    viewed: int
    view_rate: float | None
    view_rate_ci: tuple[float, float] | None
    time_to_view_s: dict[str, float | None]  # median, p90
    dwell_s: dict[str, float | None]  # median, p90: on screen until acted on
    quick_dismissals: int  # dismissed within QUICK_S
    outcomes: dict[str, int]
    dismissal_reasons: dict[str, int]
    follow_through: float | None
    screened: int
    yield_rate: float | None  # abnormal among screened with a known result
    latency_ms: dict[str, float | None]  # p50, p99
    burden: float | None  # shown per clinician per working day
    suppressed: dict[str, int] = field(default_factory=dict)


def load_alerts(engine: Engine, filters: Filters,
                dimensions: Sequence[str] = DIMENSIONS) -> AlertTable:
    """The alerts generated in the period, one row each, with what became of them.

    Read from `alert_summary`, which the database keeps per alert as events arrive
    (app/store/summary.py): a year of a department's log is a couple of hundred thousand
    rows read by the time index, not a million events pivoted per call. Only the
    `dimensions` asked for are read (the others come back empty): text is most of the
    cost of a year's rows, and the headline figures need only the clinician."""
    s = _SUMMARY.c
    clauses = [s.generated_ms >= _epoch_ms(filters.since)]
    if filters.until is not None:
        clauses.append(s.generated_ms < _epoch_ms(filters.until))
    clauses += [s[name] == getattr(filters, name) for name in DIMENSIONS
                if getattr(filters, name) is not None]
    numbers = ("generated_ms", "displayed_ms", "viewed_ms", "finished_ms", "screened_ms",
               "latency_ms", "abnormal")
    texts = ("outcome", "reason", *dimensions)
    empty = {"outcome": "open"}
    query = select(*(s[name] for name in numbers),
                   *(func.coalesce(s[name], empty.get(name, "")) for name in texts)
                   ).where(*clauses)
    with engine.connect() as conn:
        # The driver's rows as they are: SQLAlchemy's Row objects cost a fifth of the time.
        rows = conn.execute(query).cursor.fetchall()
    grid = np.array(rows, dtype=object).reshape(len(rows), len(numbers) + len(texts))
    values = {name: np.array(grid[:, i].tolist(), dtype=float)  # NULL becomes nan
              for i, name in enumerate(numbers)}
    words = {name: grid[:, len(numbers) + i] for i, name in enumerate(texts)}
    blank = np.full(len(rows), "", dtype=object)

    def times(name: str) -> np.ndarray:
        ms = values[name]
        out = np.full(len(ms), np.datetime64("NaT"), dtype="datetime64[ms]")
        known = ~np.isnan(ms)
        out[known] = np.round(ms[known]).astype("int64").astype("datetime64[ms]")
        return out

    return AlertTable(
        generated=times("generated_ms"), displayed=times("displayed_ms"),
        viewed=times("viewed_ms"), finished=times("finished_ms"),
        screened=times("screened_ms"), outcome=words["outcome"], reason=words["reason"],
        latency_ms=values["latency_ms"], abnormal=values["abnormal"],
        **{name: words.get(name, blank) for name in DIMENSIONS})


def _epoch_ms(when: datetime) -> float:
    return when.timestamp() * 1000.0


def load_suppressed(engine: Engine, filters: Filters) -> dict[str, int]:
    """Suppressed decisions in the period by reason code ("recently-shown", ...)."""
    e = _EVENTS.c
    code = func.substr(e.reason, 1, func.instr(e.reason, ":") - 1) \
        if engine.dialect.name == "sqlite" else func.split_part(e.reason, ":", 1)
    query = (select(code, func.count()).where(*filters.where(),
                                              e.event == AlertEventType.SUPPRESSED.value)
             .group_by(code))
    with engine.connect() as conn:
        return {str(reason or "unspecified"): int(n) for reason, n in conn.execute(query)}


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95 % by default)."""
    if trials == 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (
        1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _quantiles(values: np.ndarray, *qs: float) -> dict[str, float | None]:
    """The median (halfway between the middle two) and nearest-rank percentiles."""
    values = values[~np.isnan(values)]
    out: dict[str, float | None] = {}
    for q in qs:
        if not len(values):
            out["median" if q == 50 else f"p{q:g}"] = None
        elif q == 50:
            out["median"] = round(float(np.median(values)), 3)
        else:
            out[f"p{q:g}"] = round(float(np.percentile(values, q, method="inverted_cdf")), 3)
    return out


def _seconds(later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    both = ~np.isnat(later) & ~np.isnat(earlier)
    out = np.full(len(later), np.nan)
    out[both] = (later[both] - earlier[both]).astype("timedelta64[ms]").astype(float) / 1000
    return out


def figures(table: AlertTable, suppressed: dict[str, int] | None = None) -> Figures:
    """The headline figures of these alerts."""
    shown = ~np.isnat(table.displayed)
    viewed = shown & ~np.isnat(table.viewed)
    n_shown, n_viewed = int(shown.sum()), int(viewed.sum())
    dwell = _seconds(table.finished, table.displayed)
    dismissed = table.outcome == AlertEventType.DISMISSED.value
    quick = int((dismissed & (dwell < QUICK_S)).sum())
    # Counting words with a dict: np.unique on object arrays sorts them, ten times slower.
    outcomes = Counter(table.outcome[shown].tolist())
    unseen = int((table.outcome[~shown] == "expired unseen").sum())
    if unseen:
        outcomes["expired unseen"] = outcomes.get("expired unseen", 0) + unseen
    reasons = Counter(table.reason[dismissed].tolist())
    follow_s = _seconds(table.screened, table.generated)
    followed = follow_s <= FOLLOW_DAYS * 86400
    known = followed & ~np.isnan(table.abnormal)
    days = table.displayed[shown].astype("datetime64[D]")
    pairs = {(c, d) for c, d in zip(table.clinician[shown], days.tolist(), strict=True)}
    return Figures(
        alerts=len(table), displayed=n_shown, viewed=n_viewed,
        view_rate=round(n_viewed / n_shown, 4) if n_shown else None,
        view_rate_ci=wilson(n_viewed, n_shown),
        time_to_view_s=_quantiles(_seconds(table.viewed, table.displayed)[viewed], 50, 90),
        dwell_s=_quantiles(dwell[shown], 50, 90), quick_dismissals=quick,
        outcomes={str(k): int(v) for k, v in outcomes.items()},
        dismissal_reasons={str(k) or "unspecified": int(v) for k, v in reasons.items()},
        follow_through=round(float(followed.mean()), 4) if len(table) else None,
        screened=int(followed.sum()),
        yield_rate=round(float(table.abnormal[known].mean()), 4) if known.any() else None,
        latency_ms=_quantiles(table.latency_ms[shown], 50, 99),
        burden=round(n_shown / len(pairs), 3) if pairs else None,
        suppressed=dict(suppressed or {}))


@dataclass(frozen=True, slots=True)
class Bucket:
    """View rate for alerts whose latency fell in [low, high) ms."""

    low: float
    high: float
    shown: int
    viewed: int
    rate: float | None
    ci: tuple[float, float] | None

    @property
    def label(self) -> str:
        if math.isinf(self.high):
            return f"> {self.low:g} ms"
        return f"< {self.high:g} ms" if self.low == 0 else f"{self.low:g}–{self.high:g} ms"


def view_rate_by_latency(table: AlertTable,
                         buckets: Sequence[tuple[float, float]] = LATENCY_BUCKETS
                         ) -> list[Bucket]:
    """The view rate per latency bucket with its 95 % interval, so nobody reads a
    difference into three alerts."""
    shown = ~np.isnat(table.displayed) & ~np.isnan(table.latency_ms)
    viewed = ~np.isnat(table.viewed)
    out = []
    for low, high in buckets:
        inside = shown & (table.latency_ms >= low) & (table.latency_ms < high)
        n, k = int(inside.sum()), int((inside & viewed).sum())
        out.append(Bucket(low, high, n, k, round(k / n, 4) if n else None, wilson(k, n)))
    return out


def by_period(table: AlertTable, period: str = "day") -> dict[date, Figures]:
    """Figures per day or per ISO week (keyed by the week's Monday), oldest first."""
    days = table.generated.astype("datetime64[D]")
    if period == "week":
        # datetime64 day 0 (1970-01-01) was a Thursday: Monday of each week.
        days = (days - ((days.astype(int) + 3) % 7).astype("timedelta64[D]"))
    out = {}
    for day in np.unique(days):
        out[day.astype(object)] = figures(table.take(days == day))
    return out


def by_dimension(table: AlertTable, dimension: str) -> dict[str, Figures]:
    """Figures per department, workstation, clinician, model or tier."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"--by takes one of {', '.join(DIMENSIONS)} or week, "
                         f"not {dimension!r}")
    values = getattr(table, dimension)
    return {str(v) or "(none)": figures(table.take(values == v)) for v in np.unique(values)}


def comments(engine: Engine, filters: Filters, limit: int = 200
             ) -> list[tuple[datetime, str, str, str]]:
    """Free-text dismissal comments, newest first: (when, clinician, model, comment) —
    where broken rules show first. Clinicians as the log has them (pseudonymous where
    the export asks)."""
    e = _EVENTS.c
    query = (select(e.at, e.clinician, e.model, e.comment)
             .where(*filters.where(), e.event == AlertEventType.DISMISSED.value,
                    e.comment != "").order_by(e.at.desc()).limit(limit))
    with engine.connect() as conn:
        return [(r[0], r[1], r[2], r[3]) for r in conn.execute(query)]


def dimension_values(engine: Engine) -> dict[str, list[str]]:
    """The values each filter can take (every department, workstation, ... that an
    alert in the log has), read from the per-alert summary."""
    out = {}
    with engine.connect() as conn:
        for name in DIMENSIONS:
            column = _SUMMARY.c[name]
            out[name] = sorted(v for v in conn.execute(
                select(column).where(column != "").distinct()).scalars() if v)
    return out
