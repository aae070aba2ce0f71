"""Adoption figures from the alert log: `clarion stats` (the admin dashboard reads the same)."""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.store.models import AlertEvent

_SPAN = re.compile(r"^(\d+)([dhw])$")


def parse_since(text: str) -> timedelta:
    """'30d', '12h', '2w' → a timedelta."""
    match = _SPAN.match(text.strip())
    if not match:
        raise ValueError(f"--since takes a number and d, h or w (e.g. 30d), not {text!r}")
    n, unit = int(match.group(1)), match.group(2)
    return {"d": timedelta(days=n), "h": timedelta(hours=n), "w": timedelta(weeks=n)}[unit]


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-th percentile of a non-empty list (also used by bench/)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _pct(values: list[float], q: float) -> float | None:
    return percentile(values, q) if values else None


def adoption(engine: Engine, since: datetime) -> dict[str, Any]:
    """Headline adoption figures for alerts generated since `since`."""
    with Session(engine) as session:
        rows = session.scalars(select(AlertEvent).where(AlertEvent.at >= since)
                               .order_by(AlertEvent.at)).all()
    by_alert: dict[str, dict[str, AlertEvent]] = {}
    suppressed: Counter[str] = Counter()
    dismissals: Counter[str] = Counter()
    latencies: list[float] = []
    for row in rows:
        if row.event == "suppressed":
            suppressed[row.reason.split(":")[0]] += 1
            continue
        by_alert.setdefault(row.alert_id, {}).setdefault(row.event, row)
        if row.event == "dismissed":
            dismissals[row.reason or "unspecified"] += 1
        if row.event == "displayed":
            total = json.loads(row.detail).get("latency_ms", {}).get("total")
            if total is not None:
                latencies.append(float(total))
    generated = [a for a in by_alert.values() if "generated" in a]
    displayed = [a for a in generated if "displayed" in a]
    viewed = [a for a in displayed if "viewed" in a]
    to_view = [(a["viewed"].at - a["displayed"].at).total_seconds() for a in viewed]
    followed = [a for a in generated if "screening_completed" in a]
    outcomes = Counter(next((e for e in ("acknowledged", "dismissed", "snoozed", "expired")
                             if e in a), "open") for a in displayed)

    def rate(part: list[Any], whole: list[Any]) -> float | None:
        return round(len(part) / len(whole), 4) if whole else None

    return {
        "since": since.isoformat(timespec="seconds"),
        "alerts": len(generated), "displayed": len(displayed),
        "suppressed": sum(suppressed.values()), "suppressed_by_reason": dict(suppressed),
        "view_rate": rate(viewed, displayed),
        "median_time_to_view_s": round(statistics.median(to_view), 2) if to_view else None,
        "outcomes": dict(outcomes), "dismissal_reasons": dict(dismissals),
        "follow_through_rate": rate(followed, generated),
        "latency_ms": {"p50": _pct(latencies, 50), "p99": _pct(latencies, 99),
                       "n": len(latencies)},
    }


def render(figures: dict[str, Any]) -> str:
    """The figures as a few lines for a terminal."""
    def fmt(value: float | None, pct: bool = True) -> str:
        if value is None:
            return "n/a"
        return f"{value:.0%}" if pct else f"{value:g}"
    lat = figures["latency_ms"]
    lines = [
        f"since {figures['since']}",
        f"alerts shown: {figures['alerts']} (displayed {figures['displayed']}; "
        f"suppressed {figures['suppressed']})",
        f"view rate: {fmt(figures['view_rate'])}   median time to view: "
        f"{fmt(figures['median_time_to_view_s'], False)} s",
        f"follow-through (recommended test resulted): {fmt(figures['follow_through_rate'])}",
        "outcomes: " + (", ".join(f"{k} {v}" for k, v in figures["outcomes"].items()) or "none"),
        "dismissal reasons: " + (", ".join(f"{k} {v}" for k, v in
                                           figures["dismissal_reasons"].items()) or "none"),
        "suppressed by reason: " + (", ".join(f"{k} {v}" for k, v in
                                              figures["suppressed_by_reason"].items()) or "none"),
        f"latency frame received → banner painted: p50 {fmt(lat['p50'], False)} ms, "
        f"p99 {fmt(lat['p99'], False)} ms (n={lat['n']})",
    ]
    return "\n".join(lines)
