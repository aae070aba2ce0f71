"""The adoption charts as functions of the figures (no Qt): the dashboard shows them in
`FigureCanvasQTAgg`, the committee report prints the same figures to PDF."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

from app.adoption.anomaly import Anomaly
from app.adoption.figures import Bucket, Figures

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def trend_chart(days: dict[date, Figures], anomalies: Sequence[Anomaly], since: date,
                until: date, width_in: float = 7.0, height_in: float = 3.2) -> Figure:
    """Alerts shown per day and the view rate, with the anomaly days shaded."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num

    figure = _figure(width_in, height_in)
    ax = figure.subplots()
    span = [since + timedelta(days=i) for i in range((until - since).days + 1)]
    shown = [days[d].displayed if d in days else 0 for d in span]
    ax.bar(date2num(span), shown, width=0.8, color="#90a4ae", label="alerts shown")
    ax.set_ylabel("alerts shown per day", fontsize=8)
    rate_ax = ax.twinx()
    points = [(d, float(days[d].view_rate or 0.0)) for d in span
              if d in days and days[d].view_rate is not None]
    if points:
        rate_ax.plot(date2num([d for d, _ in points]), [r for _, r in points], color="#1565c0",
                     marker="o", markersize=2.5, linewidth=1.0, label="view rate")
    rate_ax.set_ylim(0, 1)
    rate_ax.set_ylabel("view rate", fontsize=8)
    flagged = sorted({a.day for a in anomalies})
    for i, day in enumerate(flagged):
        ax.axvspan(float(date2num(day)) - 0.5, float(date2num(day)) + 0.5, color="#ef9a9a",
                   alpha=0.6, zorder=0, label="anomaly" if i == 0 else None)
    handles = ax.get_legend_handles_labels()
    rate_handles = rate_ax.get_legend_handles_labels()
    ax.legend(handles[0] + rate_handles[0], handles[1] + rate_handles[1], fontsize=7,
              loc="upper left")
    ax.tick_params(labelsize=7)
    rate_ax.tick_params(labelsize=7)
    ax.set_title("Alerts shown and viewed per day (anomaly days shaded)", fontsize=9, loc="left")
    locator = AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return figure


def latency_chart(buckets: Sequence[Bucket], width_in: float = 4.6,
                  height_in: float = 3.2) -> Figure:
    """View rate by latency bucket, with the 95 % interval and the count on each bar."""
    figure = _figure(width_in, height_in)
    ax = figure.subplots()
    labels = [b.label for b in buckets]
    rates = [b.rate or 0.0 for b in buckets]
    errors = [[(b.rate or 0) - b.ci[0] if b.ci else 0 for b in buckets],
              [b.ci[1] - (b.rate or 0) if b.ci else 0 for b in buckets]]
    ax.bar(labels, rates, color="#42a5f5", yerr=errors, capsize=4)
    for i, b in enumerate(buckets):
        ax.annotate(f"n={b.shown}", (i, 0.02), ha="center", fontsize=7, color="#0d2a4a")
    ax.set_ylim(0, 1)
    ax.set_ylabel("view rate", fontsize=8)
    ax.set_xlabel("frame received → banner painted", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title("Viewed, by latency (95 % interval)", fontsize=9, loc="left")
    return figure


def outcome_chart(figures: Figures, width_in: float = 4.6, height_in: float = 3.0) -> Figure:
    """What clinicians answered, with dismissals split by reason."""
    figure = _figure(width_in, height_in)
    ax = figure.subplots()
    parts = {k: v for k, v in figures.outcomes.items() if k != "dismissed"}
    for reason, n in figures.dismissal_reasons.items():
        parts[f"dismissed: {reason}"] = n
    names = sorted(parts, key=lambda k: -parts[k])
    ax.barh(names[::-1], [parts[n] for n in names][::-1], color="#78909c")
    ax.tick_params(labelsize=7)
    ax.set_title("Outcomes", fontsize=9, loc="left")
    return figure
