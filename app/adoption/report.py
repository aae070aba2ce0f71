"""The committee report (PDF) and the exports (CSV), headless (the department receiver
has no display), from the same figures and charts as the dashboard.

Exports carry no patient names, MRNs or results: patients and clinicians appear as keyed
pseudonyms (`app.logs.pseudonym`), and free text is guarded against spreadsheet formula
injection (a cell starting with =, +, -, @, tab or carriage return is prefixed with ').
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from app import logs
from app.adoption import anomaly
from app.adoption.figures import (
    DIMENSIONS,
    Bucket,
    Figures,
    Filters,
    by_dimension,
    by_period,
    comments,
    figures,
    load_alerts,
    load_suppressed,
    view_rate_by_latency,
)
from app.store.models import AlertEvent, table_of

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """Text a spreadsheet shows as text, never runs as a formula (OWASP: CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def pseudonymous(name: str, kind: str = "clinician") -> str:
    return logs.pseudonym(name, kind) if name else ""


@dataclass
class Report:
    """Everything the dashboard and the report show, for one filter."""

    filters: Filters
    since: date
    until: date
    overall: Figures
    days: dict[date, Figures]
    buckets: list[Bucket]
    breakdown: dict[str, dict[str, Figures]]
    anomalies: list[anomaly.Anomaly]
    comments: list[tuple[datetime, str, str, str]]
    models: list[str] = field(default_factory=list)
    engines: list[str] = field(default_factory=list)


def build(engine: Engine, filters: Filters, pseudonyms: bool = True,
          today: date | None = None) -> Report:
    """One read of the log for everything: figures, per day, per dimension, latency
    buckets, anomalies of the period, the comment queue."""
    today = today or datetime.now(UTC).date()
    table = load_alerts(engine, filters)
    overall = figures(table, load_suppressed(engine, filters))
    breakdown = {name: by_dimension(table, name) for name in DIMENSIONS}
    queue = comments(engine, filters)
    if pseudonyms:
        breakdown["clinician"] = {pseudonymous(k): v for k, v in breakdown["clinician"].items()}
        queue = [(at, pseudonymous(who), model, text) for at, who, model, text in queue]
    since = filters.since.astimezone(UTC).date()
    days = max(1, min((today - since).days, 365))
    with engine.connect() as conn:
        e = table_of(AlertEvent).c
        used = conn.execute(select(e.model, e.engine).where(*filters.where()).distinct()).all()
    return Report(filters, since, today, overall, by_period(table, "day"),
                  view_rate_by_latency(table), breakdown,
                  anomaly.check(engine, days=days, today=today, warn=False), queue,
                  sorted({m for m, _ in used if m}), sorted({g for _, g in used if g}))


def kpis(report: Report) -> list[tuple[str, str]]:
    """The eight tiles: (name, value in words)."""
    f = report.overall

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    ci = f.view_rate_ci
    return [
        ("Alerts shown", f"{f.displayed}"),
        ("Viewed", pct(f.view_rate) + (f" ({ci[0]:.0%}–{ci[1]:.0%})" if ci else "")),
        ("Median time to view", "n/a" if f.time_to_view_s["median"] is None
         else f"{f.time_to_view_s['median']:.0f} s"),
        ("Burden", "n/a" if f.burden is None else f"{f.burden:.1f} / clinician-day"),
        ("Follow-through", pct(f.follow_through)),
        ("Yield", pct(f.yield_rate)),
        ("Latency p50 / p99", "n/a" if f.latency_ms["median"] is None else
         f"{f.latency_ms['median']:.0f} / {f.latency_ms['p99']:.0f} ms"),
        ("Suppressed", f"{sum(f.suppressed.values())}"),
    ]


def write_pdf(report: Report, path: Path, department: str = "", disclaimer: str = "") -> Path:
    """The report for a committee: header, KPI tiles, trend and latency charts, tables,
    anomalies, comments to review, and the model card's disclaimer."""
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    from app.adoption.charts import latency_chart, outcome_chart, trend_chart

    path.parent.mkdir(parents=True, exist_ok=True)
    with PdfPages(path, metadata={"Title": "Clarion adoption report",
                                  "Creator": "Clarion"}) as pdf:
        cover = Figure(figsize=(8.27, 11.69))
        cover.text(0.06, 0.95, "Clarion — adoption report", fontsize=18, weight="bold")
        cover.text(0.06, 0.925, f"{department or 'all departments'} · {report.since} to "
                                f"{report.until} · models: {', '.join(report.models) or 'none'}"
                                f" · engines: {', '.join(report.engines) or 'none'}", fontsize=9)
        for i, (name, value) in enumerate(kpis(report)):
            x, y = 0.06 + (i % 4) * 0.23, 0.82 - (i // 4) * 0.09
            cover.patches.append(FancyBboxPatch(
                (x, y), 0.21, 0.075, boxstyle="round,pad=0.005", transform=cover.transFigure,
                facecolor="#eceff1", edgecolor="#90a4ae"))
            cover.text(x + 0.01, y + 0.045, value, fontsize=13, weight="bold")
            cover.text(x + 0.01, y + 0.015, name, fontsize=8, color="#37474f")
        lines = ["Anomalies (each day against the same weekday of earlier weeks):"]
        lines += [f"  • {a.words}" for a in report.anomalies] or ["  none found"]
        lines += ["", "Outcomes: " + ", ".join(f"{k} {v}" for k, v in
                                                report.overall.outcomes.items()),
                  "Dismissal reasons: " + ", ".join(f"{k} {v}" for k, v in
                                                    report.overall.dismissal_reasons.items()),
                  f"Dismissed within 3 s (not a decision): {report.overall.quick_dismissals}",
                  "", "Viewed by latency (frame received → banner painted):"]
        lines += [f"  {b.label}: {b.viewed} of {b.shown}" + (
            f" = {b.rate:.0%} (95 % interval {b.ci[0]:.0%}–{b.ci[1]:.0%})" if b.ci else "")
            for b in report.buckets]
        cover.text(0.06, 0.62, "\n".join(lines), fontsize=8.5, va="top", family="DejaVu Sans")
        cover.text(0.06, 0.05, "Model card: " + (disclaimer or "see the model card."),
                   fontsize=8, style="italic", wrap=True)
        pdf.savefig(cover)
        pdf.savefig(trend_chart(report.days, report.anomalies, report.since, report.until,
                                width_in=10, height_in=4.5))
        pdf.savefig(latency_chart(report.buckets, width_in=7, height_in=4.5))
        pdf.savefig(outcome_chart(report.overall, width_in=7, height_in=4.5))
        for name in ("department", "workstation", "clinician", "tier", "model"):
            pdf.savefig(_table_page(f"By {name}", report.breakdown[name]))
        comment_page = Figure(figsize=(8.27, 11.69))
        comment_page.text(0.06, 0.95, "Dismissal comments to review (newest first)",
                          fontsize=12, weight="bold")
        text = "\n".join(f"{at:%Y-%m-%d} {who} {model}: {comment[:90]}"
                         for at, who, model, comment in report.comments[:60]) or "none"
        comment_page.text(0.06, 0.92, text, fontsize=7.5, va="top")
        pdf.savefig(comment_page)
    return path


def _table_page(title: str, rows: dict[str, Figures]) -> Any:
    from matplotlib.figure import Figure

    page = Figure(figsize=(11.69, 8.27))
    ax = page.subplots()
    ax.axis("off")
    ax.set_title(title, loc="left", fontsize=12, weight="bold")
    head = ["", "shown", "viewed", "median to view (s)", "acknowledged", "dismissed",
            "expired", "follow-through", "burden"]
    body = []
    for key, f in sorted(rows.items(), key=lambda kv: -kv[1].displayed)[:30]:
        body.append([key, f.displayed, f"{f.view_rate:.0%}" if f.view_rate is not None else "",
                     f.time_to_view_s["median"] or "", f.outcomes.get("acknowledged", 0),
                     f.outcomes.get("dismissed", 0), f.outcomes.get("expired", 0)
                     + f.outcomes.get("expired unseen", 0),
                     f"{f.follow_through:.0%}" if f.follow_through is not None else "",
                     f.burden or ""])
    if body:
        table = ax.table(cellText=body, colLabels=head, loc="upper left", cellLoc="right")
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.scale(1, 1.3)
    return page


def write_csv(engine: Engine, report: Report, folder: Path) -> list[Path]:
    """The event table and the daily figures: pseudonymous keys, no names, MRNs or
    results, free text guarded against formula injection."""
    folder.mkdir(parents=True, exist_ok=True)
    e = table_of(AlertEvent).c
    events = folder / "alert_events.csv"
    with engine.connect() as conn, events.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["alert", "event", "at", "department", "workstation", "clinician",
                         "patient", "model", "tier", "risk", "engine", "reason", "comment"])
        query = select(e.alert_id, e.event, e.at, e.department, e.workstation, e.clinician,
                       e.patient_id, e.model, e.tier, e.risk, e.engine, e.reason,
                       e.comment).where(*report.filters.where()).order_by(e.id)
        for row in conn.execute(query).yield_per(5000):
            writer.writerow([row.alert_id, row.event, row.at.isoformat(),
                             safe_cell(row.department), safe_cell(row.workstation),
                             pseudonymous(row.clinician),
                             logs.pseudonym(str(row.patient_id), "patient"),
                             safe_cell(row.model), row.tier,
                             "" if row.risk is None else f"{row.risk:.4f}", row.engine,
                             safe_cell(row.reason.split(": ", 1)[0]), safe_cell(row.comment)])
    daily = folder / "daily.csv"
    with daily.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["day", "alerts", "shown", "viewed", "view_rate", "acknowledged",
                         "dismissed", "snoozed", "expired", "follow_through", "latency_p50_ms",
                         "latency_p99_ms"])
        day = report.since
        while day <= report.until:
            f = report.days.get(day)
            if f is not None:
                writer.writerow([day.isoformat(), f.alerts, f.displayed, f.viewed,
                                 f.view_rate, f.outcomes.get("acknowledged", 0),
                                 f.outcomes.get("dismissed", 0), f.outcomes.get("snoozed", 0),
                                 f.outcomes.get("expired", 0)
                                 + f.outcomes.get("expired unseen", 0), f.follow_through,
                                 f.latency_ms["median"], f.latency_ms["p99"]])
            day += timedelta(days=1)
    return [events, daily]
