"""Charts as functions of data (no Qt): a matplotlib `Figure` built from figures the core
computed, shown in the patient view (`FigureCanvasQTAgg`) and reusable in a PDF report.

Only `matplotlib.figure.Figure` is used — no pyplot, so no global state and no GUI
backend is chosen here. The trend panels' ranges and thresholds live here too, as data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True, slots=True)
class Band:
    """A range drawn behind a trend: the reference range, or a diagnostic zone."""

    low: float | None
    high: float | None
    label: str
    colour: str


@dataclass(frozen=True, slots=True)
class TrendSpec:
    """One trend panel: which inputs, in which unit, against which ranges and thresholds."""

    title: str
    unit: str
    series: tuple[tuple[str, str], ...]  # (input name, legend label)
    bands: tuple[Band, ...]
    thresholds: tuple[tuple[float, str], ...]  # (value, label): a diagnostic cut-off line


GREEN, AMBER, RED = "#e3f1e4", "#fff1d6", "#fbe0e0"

# Ranges and thresholds as the guidelines give them (ADA Standards of Care 2025 for
# glycaemia; WHO for BMI; ACC/AHA 2017 for blood pressure).
TRENDS: tuple[TrendSpec, ...] = (
    TrendSpec("HbA1c", "%", (("hba1c", "HbA1c"),),
              (Band(None, 5.7, "normal < 5.7", GREEN), Band(5.7, 6.5, "prediabetes 5.7–6.4", AMBER),
               Band(6.5, None, "diabetes ≥ 6.5", RED)),
              ((6.5, "diabetes ≥ 6.5 %"),)),
    TrendSpec("Fasting glucose", "mg/dL", (("fpg", "fasting glucose"),),
              (Band(70, 100, "normal 70–99", GREEN), Band(100, 126, "prediabetes 100–125", AMBER),
               Band(126, None, "diabetes ≥ 126", RED)),
              ((126, "diabetes ≥ 126 mg/dL"),)),
    TrendSpec("BMI", "kg/m²", (("bmi", "BMI"),),
              (Band(18.5, 25, "healthy 18.5–24.9", GREEN), Band(25, 30, "overweight 25–29.9", AMBER),
               Band(30, None, "obesity ≥ 30", RED)),
              ((30, "obesity ≥ 30"),)),
    TrendSpec("Blood pressure", "mm Hg", (("sbp", "systolic"), ("dbp", "diastolic")),
              (Band(None, 120, "systolic normal < 120", GREEN),),
              ((130, "stage 1 hypertension ≥ 130/80"), (80, ""))),
)

Series = Sequence[tuple[datetime, float]]


def trend_figure(values: Mapping[str, Series], specs: Sequence[TrendSpec] = TRENDS,
                 width_in: float = 6.4, height_in: float = 5.6) -> Figure:
    """One small panel per trend, the ranges shaded and the thresholds drawn; a panel
    with no values says so instead of drawing empty axes."""
    # Imported here: matplotlib is slow to import, and the data above (the ranges) is read
    # by code that never draws.
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    axes = figure.subplots(len(specs), 1, squeeze=False, sharex=True)[:, 0]
    dates = [when for spec in specs for name, _ in spec.series
             for when, _ in values.get(name, ())]
    # One time axis for every panel, a little wider than the results (a single visit
    # still gets a readable axis).
    span = (min(dates) - timedelta(days=90), max(dates) + timedelta(days=90)) if dates \
        else None
    for ax, spec in zip(axes, specs, strict=True):
        shown = [(label, sorted(values.get(name, ()))) for name, label in spec.series]
        points = [v for _, series in shown for _, v in series]
        ax.set_title(f"{spec.title} ({spec.unit})", fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
        if not points:
            ax.text(0.5, 0.5, "no results on record", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color="#555555")
            ax.set_yticks([])
            continue
        low = min(points + [t for t, _ in spec.thresholds])
        high = max(points + [t for t, _ in spec.thresholds])
        pad = (high - low) * 0.15 or 1.0
        bottom, top = low - pad, high + pad
        for band in spec.bands:
            ax.axhspan(band.low if band.low is not None else bottom,
                       band.high if band.high is not None else top,
                       color=band.colour, zorder=0, linewidth=0)
        for value, label in spec.thresholds:
            ax.axhline(value, color="#b00020", linestyle="--", linewidth=0.9, zorder=1)
            if label:
                ax.annotate(label, (1.0, value), xycoords=("axes fraction", "data"),
                            xytext=(-2, 2), textcoords="offset points", ha="right",
                            va="bottom", fontsize=7, color="#b00020")
        for (label, series), marker in zip(shown, ("o", "s"), strict=False):
            if series:
                ax.plot([w for w, _ in series], [v for _, v in series], marker=marker, markersize=3.5, linewidth=1.2,
                        label=label, zorder=2)
        ax.set_ylim(bottom, top)
        if len(spec.series) > 1:
            ax.legend(fontsize=7, loc="upper left")
    if span is not None:
        locator = AutoDateLocator(maxticks=7)
        axes[-1].xaxis.set_major_locator(locator)
        axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))
        axes[-1].set_xlim(*span)
    return figure


BEAT_COLOURS = {"N": "#37474f", "S": "#e65100", "V": "#c62828", "F": "#6a1b9a", "Q": "#757575"}


def strip_figure(samples: Sequence[float], rate_hz: float, peaks: Sequence[int],
                 classes: Sequence[str], lead: str, offset_s: float = 0.0,
                 width_in: float = 6.0, height_in: float = 1.7) -> Figure:
    """An ECG excerpt on paper: 0.2-s and 0.5-mV grid, each detected beat marked with its
    class (N normal, S supraventricular, V ventricular premature, F fusion, Q unknown)."""
    import numpy as np
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    x = np.asarray(samples, dtype=float)
    t = offset_s + np.arange(len(x)) / rate_hz
    axes.plot(t, x, color="#1a1a1a", linewidth=0.8)
    top = float(np.max(x)) if len(x) else 1.0
    for peak, cls in zip(peaks, classes or [""] * len(peaks), strict=False):
        if 0 <= peak < len(x):
            colour = BEAT_COLOURS.get(cls, "#1565c0")
            axes.plot(t[peak], x[peak], "v", color=colour, markersize=4)
            if cls and cls != "N":
                axes.annotate(cls, (t[peak], top), xytext=(0, 3), textcoords="offset points",
                              ha="center", fontsize=7, color=colour, fontweight="bold")
    start, end = (t[0], t[-1]) if len(t) else (0.0, 1.0)
    axes.set_xticks(np.arange(np.floor(start), end + 1e-9, 1.0))
    axes.set_xticks(np.arange(start, end, 0.2), minor=True)
    low = float(np.floor(np.min(x) * 2) / 2) if len(x) else -1.0
    high = float(np.ceil(top * 2) / 2 + 0.5) if len(x) else 1.0
    axes.set_yticks(np.arange(low, high + 1e-9, 0.5))
    axes.set_ylim(low, high)
    axes.set_xlim(start, end)
    axes.grid(which="major", color="#f4a6a6", linewidth=0.6)
    axes.grid(which="minor", color="#fbdcdc", linewidth=0.3)
    axes.tick_params(labelsize=7)
    axes.set_xlabel("s", fontsize=7, labelpad=0)
    axes.set_ylabel(f"{lead} (mV)", fontsize=7)
    return figure


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (Agg, no GUI backend)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    figure.set_dpi(dpi)
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()
