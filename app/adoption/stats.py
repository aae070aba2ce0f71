"""Adoption figures from the alert log: `clarion stats` (the admin dashboard reads the same)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine

from app.adoption.figures import (
    Filters,
    by_dimension,
    by_period,
    figures,
    load_alerts,
    load_suppressed,
    view_rate_by_latency,
)

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


def adoption(engine: Engine, since: datetime, filters: Filters | None = None
             ) -> dict[str, Any]:
    """Headline adoption figures for alerts generated since `since` (one computation
    with the dashboard and the report: app/adoption/figures.py)."""
    filters = filters or Filters(since=since)
    table = load_alerts(engine, filters, dimensions=("clinician",))  # the burden's
    f = figures(table, load_suppressed(engine, filters))
    return {
        "since": since.isoformat(timespec="seconds"),
        "alerts": f.alerts, "displayed": f.displayed,
        "suppressed": sum(f.suppressed.values()), "suppressed_by_reason": f.suppressed,
        "view_rate": f.view_rate,
        "view_rate_ci95": list(f.view_rate_ci) if f.view_rate_ci else None,
        "median_time_to_view_s": f.time_to_view_s["median"],
        "p90_time_to_view_s": f.time_to_view_s["p90"],
        "dwell_s": f.dwell_s, "quick_dismissals": f.quick_dismissals,
        "outcomes": f.outcomes, "dismissal_reasons": f.dismissal_reasons,
        "follow_through_rate": f.follow_through, "yield": f.yield_rate,
        "burden_per_clinician_day": f.burden,
        "latency_ms": {"p50": f.latency_ms["median"], "p99": f.latency_ms["p99"],
                       "n": int((~np.isnan(table.latency_ms)).sum())},
        "view_rate_by_latency": [
            {"bucket": b.label, "shown": b.shown, "viewed": b.viewed, "rate": b.rate,
             "ci95": list(b.ci) if b.ci else None} for b in view_rate_by_latency(table)],
    }


def breakdown(engine: Engine, since: datetime, by: str, pseudonyms: bool = True
              ) -> dict[str, dict[str, Any]]:
    """`clarion stats --by`: the headline figures per department, workstation,
    clinician (pseudonymous unless asked), model, tier, or week."""
    table = load_alerts(engine, Filters(since=since),
                        dimensions=("clinician",) if by in ("week", "clinician") else
                        (by, "clinician"))
    if by == "week":
        groups = {d.isoformat(): f for d, f in by_period(table, "week").items()}
    else:
        groups = by_dimension(table, by)
        if by == "clinician" and pseudonyms:
            from app import logs

            groups = {logs.pseudonym(k, "clinician"): v for k, v in groups.items()}
    return {key: {"alerts": f.alerts, "displayed": f.displayed, "view_rate": f.view_rate,
                  "median_time_to_view_s": f.time_to_view_s["median"],
                  "outcomes": f.outcomes, "follow_through_rate": f.follow_through,
                  "burden_per_clinician_day": f.burden,
                  "latency_p99_ms": f.latency_ms["p99"]} for key, f in groups.items()}


def render_breakdown(by: str, rows: dict[str, dict[str, Any]]) -> str:
    """`--by` as a table for a terminal."""
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    lines = [f"{by:<24} {'shown':>6} {'viewed':>7} {'to view':>8} {'ack':>5} {'dismiss':>8} "
             f"{'follow':>7} {'burden':>7}"]
    for key, r in sorted(rows.items()):
        to_view = r["median_time_to_view_s"]
        lines.append(f"{key[:24]:<24} {r['displayed']:>6} {pct(r['view_rate']):>7} "
                     f"{'n/a' if to_view is None else f'{to_view:.0f} s':>8} "
                     f"{r['outcomes'].get('acknowledged', 0):>5} "
                     f"{r['outcomes'].get('dismissed', 0):>8} "
                     f"{pct(r['follow_through_rate']):>7} "
                     f"{'n/a' if r['burden_per_clinician_day'] is None else r['burden_per_clinician_day']:>7}")
    return "\n".join(lines)


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
    if "burden_per_clinician_day" in figures:
        lines += [
            f"burden: {fmt(figures['burden_per_clinician_day'], False)} shown per clinician "
            f"per working day   dismissed within 3 s (no decision): "
            f"{figures['quick_dismissals']}   yield: {fmt(figures['yield'])}",
            "viewed by latency: " + "; ".join(
                f"{b['bucket']} {fmt(b['rate'])} of {b['shown']}"
                + (f" ({b['ci95'][0]:.0%}–{b['ci95'][1]:.0%})" if b["ci95"] else "")
                for b in figures["view_rate_by_latency"])]
    for words in figures.get("anomalies", []):
        lines.append(f"ANOMALY {words}")
    return "\n".join(lines)
