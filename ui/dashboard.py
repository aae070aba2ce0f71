"""The adoption dashboard, for department admins: KPI tiles, the daily trend with the
anomaly days shaded, viewing by latency, breakdown tables, the anomalies and the
dismissal comments to review, with filters — and the committee report as a PDF.

It reads the adoption log read-only, on a thread of its own (`ReportLoader`), so opening
it or changing a filter never blocks the window or the feed; the figures and charts come
from the core (app/adoption/), the same the report prints.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from app.adoption.figures import DIMENSIONS, Figures, Filters, dimension_values
from app.adoption.report import Report, build, kpis, pseudonymous, write_pdf
from app.config import Config
from ui.qt import (
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QObject,
    QPushButton,
    QScrollArea,
    QSplitter,
    Qt,
    QVBoxLayout,
    QWidget,
    Signal,
    figure_canvas,
)
from ui.tables import Column, RowsModel, table_view

PERIODS = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "Last year": 365}
ALL = "All"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


BREAKDOWN_COLUMNS: list[Column[tuple[str, Figures]]] = [
    Column("Group", lambda r: r[0]),
    Column("Shown", lambda r: str(r[1].displayed), sort=lambda r: r[1].displayed),
    Column("Viewed", lambda r: _pct(r[1].view_rate), sort=lambda r: r[1].view_rate),
    Column("Median to view", lambda r: "n/a" if r[1].time_to_view_s["median"] is None
           else f"{r[1].time_to_view_s['median']:.0f} s",
           sort=lambda r: r[1].time_to_view_s["median"]),
    Column("Acknowledged", lambda r: str(r[1].outcomes.get("acknowledged", 0)),
           sort=lambda r: r[1].outcomes.get("acknowledged", 0)),
    Column("Dismissed", lambda r: str(r[1].outcomes.get("dismissed", 0)),
           sort=lambda r: r[1].outcomes.get("dismissed", 0)),
    Column("Quick dismissals", lambda r: str(r[1].quick_dismissals),
           sort=lambda r: r[1].quick_dismissals),
    Column("Follow-through", lambda r: _pct(r[1].follow_through),
           sort=lambda r: r[1].follow_through),
    Column("Burden", lambda r: "n/a" if r[1].burden is None else f"{r[1].burden:.1f}",
           sort=lambda r: r[1].burden),
    Column("Latency p99", lambda r: "n/a" if r[1].latency_ms["p99"] is None
           else f"{r[1].latency_ms['p99']:.0f} ms", sort=lambda r: r[1].latency_ms["p99"]),
]
COMMENT_COLUMNS: list[Column[tuple[datetime, str, str, str]]] = [
    Column("When", lambda r: f"{r[0].astimezone():%Y-%m-%d %H:%M}", sort=lambda r: r[0]),
    Column("Clinician", lambda r: r[1]),
    Column("Model", lambda r: r[2]),
    Column("Comment", lambda r: r[3], tooltip=lambda r: r[3]),
]


class ReportLoader(QObject):
    """Computes a `Report` on a thread; the result arrives on the GUI thread."""

    #: (request number, Report or the error's sentence)
    done = Signal(int, object)

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self.requests = 0

    def load(self, filters: Filters, pseudonyms: bool) -> int:
        self.requests += 1
        number = self.requests

        def work() -> None:
            try:
                result: object = build(self.engine, filters, pseudonyms)
            except Exception as exc:  # said in the window, not swallowed
                result = f"The adoption log could not be read: {type(exc).__name__}: {exc}"
            self.done.emit(number, result)

        threading.Thread(target=work, name="clarion-dashboard", daemon=True).start()
        return number


class Dashboard(QMainWindow):
    """The adoption dashboard window."""

    def __init__(self, engine: Engine, config: Config, disclaimer: str = "") -> None:
        super().__init__()
        self.engine = engine
        self.config = config
        self.disclaimer = disclaimer
        self.report: Report | None = None
        self.setWindowTitle("Clarion — adoption dashboard")
        self.setAccessibleName("Adoption dashboard")
        self.resize(1400, 900)
        self.loader = ReportLoader(engine)
        self.loader.done.connect(self._loaded)

        body = QWidget()
        layout = QVBoxLayout(body)
        bar = QHBoxLayout()
        self.period = QComboBox()
        self.period.addItems(list(PERIODS))
        self.period.setCurrentText("Last 30 days")
        self.period.setAccessibleName("Period")
        bar.addWidget(QLabel("Period"))
        bar.addWidget(self.period)
        self.filters: dict[str, QComboBox] = {}
        self._names: dict[str, str] = {}  # clinician as shown → as logged
        values = dimension_values(engine)
        for name in DIMENSIONS:
            box = QComboBox()
            box.setAccessibleName(f"Filter by {name}")
            box.addItem(ALL)
            for value in values[name]:
                shown = pseudonymous(value) if name == "clinician" else value
                self._names[shown] = value
                box.addItem(shown)
            bar.addWidget(QLabel(name.capitalize()))
            bar.addWidget(box)
            self.filters[name] = box
        bar.addStretch(1)
        self.export_button = QPushButton("Export &PDF report…")
        self.export_button.setAccessibleName("Export the committee report as PDF")
        bar.addWidget(self.export_button)
        layout.addLayout(bar)
        self.status = QLabel("Reading the adoption log…")
        self.status.setAccessibleName("Dashboard status")
        layout.addWidget(self.status)

        self.tiles = QGridLayout()
        self.tile_labels: list[QLabel] = []
        for i in range(8):
            tile = QLabel()
            tile.setFrameShape(QFrame.Shape.StyledPanel)
            tile.setTextFormat(Qt.TextFormat.RichText)
            tile.setMinimumWidth(150)
            tile.setStyleSheet("QLabel { background: #eceff1; padding: 6px; }")
            self.tiles.addWidget(tile, i // 4, i % 4)
            self.tile_labels.append(tile)
        layout.addLayout(self.tiles)

        charts = QHBoxLayout()
        self.trend_holder = QVBoxLayout()
        self.latency_holder = QVBoxLayout()
        charts.addLayout(self.trend_holder, 3)
        charts.addLayout(self.latency_holder, 2)
        layout.addLayout(charts)
        self.trend_canvas: QWidget | None = None
        self.latency_canvas: QWidget | None = None

        self.anomalies = QLabel()
        self.anomalies.setWordWrap(True)
        self.anomalies.setAccessibleName("Anomalies")
        layout.addWidget(self.anomalies)

        lower = QSplitter()
        left = QWidget()
        left_layout = QVBoxLayout(left)
        by_row = QHBoxLayout()
        by_row.addWidget(QLabel("<b>Breakdown by</b>"))
        self.by = QComboBox()
        self.by.addItems(list(DIMENSIONS))
        self.by.setCurrentText("clinician")
        self.by.setAccessibleName("Breakdown by")
        by_row.addWidget(self.by)
        by_row.addStretch(1)
        left_layout.addLayout(by_row)
        self.breakdown: RowsModel[tuple[str, Figures]] = RowsModel(BREAKDOWN_COLUMNS, self)
        self.breakdown_view = table_view(self.breakdown, "Breakdown", sort_column=1,
                                         stretch=(0,))
        left_layout.addWidget(self.breakdown_view)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(QLabel("<b>Dismissal comments to review</b>"))
        self.comments: RowsModel[tuple[datetime, str, str, str]] = RowsModel(COMMENT_COLUMNS,
                                                                             self)
        self.comments_view = table_view(self.comments, "Dismissal comments", sort_column=0,
                                        stretch=(3,))
        right_layout.addWidget(self.comments_view)
        lower.addWidget(left)
        lower.addWidget(right)
        lower.setSizes([800, 600])
        layout.addWidget(lower, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        self.setCentralWidget(scroll)

        self.period.currentTextChanged.connect(lambda _: self.refresh())
        for box in self.filters.values():
            box.currentTextChanged.connect(lambda _: self.refresh())
        self.by.currentTextChanged.connect(lambda _: self._show_breakdown())
        self.export_button.clicked.connect(self.export_pdf)
        self.pending = 0
        self.refresh()

    def current_filters(self) -> Filters:
        days = PERIODS[self.period.currentText()]
        since = (datetime.now(UTC) - timedelta(days=days)).replace(hour=0, minute=0, second=0,
                                                                    microsecond=0)
        def chosen(name: str) -> str | None:
            text = self.filters[name].currentText()
            return None if text == ALL else self._names.get(text, text)

        return Filters(since=since, department=chosen("department"),
                       workstation=chosen("workstation"), clinician=chosen("clinician"),
                       model=chosen("model"), tier=chosen("tier"))

    def refresh(self) -> None:
        """Read the log again for the filters (on the loader's thread)."""
        self.status.setText("Reading the adoption log…")
        self.pending = self.loader.load(self.current_filters(), pseudonyms=True)

    def _loaded(self, number: int, result: object) -> None:
        if number != self.pending:
            return  # a newer request is on its way
        if isinstance(result, str):
            self.status.setText(result)
            return
        assert isinstance(result, Report)
        self.report = result
        f = result.overall
        self.status.setText(f"{result.since} to {result.until} · {f.alerts} alerts · models "
                            f"{', '.join(result.models) or 'none'} · engines "
                            f"{', '.join(result.engines) or 'none'}")
        for label, (name, value) in zip(self.tile_labels, kpis(result), strict=True):
            label.setText(f"<span style='font-size:15pt'><b>{value}</b></span><br>{name}")
            label.setAccessibleName(f"{name}: {value}")
        from app.adoption.charts import latency_chart, trend_chart

        self.trend_canvas = self._replace(self.trend_holder, self.trend_canvas, figure_canvas(
            trend_chart(result.days, result.anomalies, result.since, result.until)))
        self.latency_canvas = self._replace(self.latency_holder, self.latency_canvas,
                                            figure_canvas(latency_chart(result.buckets)))
        self.anomalies.setText("<b>Anomalies</b> (each day against the same weekday of "
                               "earlier weeks): " + ("; ".join(a.words for a in result.anomalies)
                                                     or "none found"))
        self._show_breakdown()
        self.comments.set_rows(result.comments)

    @staticmethod
    def _replace(holder: QVBoxLayout, old: QWidget | None, new: QWidget) -> QWidget:
        if old is not None:
            holder.removeWidget(old)
            old.setParent(None)  # type: ignore[call-overload]
            old.deleteLater()
        new.setMinimumHeight(280)
        holder.addWidget(new)
        new.show()
        return new

    def _show_breakdown(self) -> None:
        if self.report is not None:
            self.breakdown.set_rows(list(self.report.breakdown[self.by.currentText()].items()))

    def export_pdf(self, path: Path | None = None) -> Path | None:
        """The committee report for the current filters (asks where, unless told)."""
        if self.report is None:
            return None
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self, "Save the adoption report",
                                                    "clarion-adoption.pdf", "PDF (*.pdf)")
            if not chosen:
                return None
            path = Path(chosen)
        department = self.filters["department"].currentText()
        written = write_pdf(self.report, path, "" if department == ALL else department,
                            self.disclaimer)
        self.status.setText(f"Report written to {written}")
        return written


def open_dashboard(engine: Engine, config: Config) -> Dashboard:
    """The dashboard for this store (the tray and the main window open it for admins)."""
    from engines.card import load_card

    card = load_card("t2d")
    return Dashboard(engine, config, f"{card.display} {card.version}: {card.disclaimer}")


def run_dashboard(config: Config) -> int:
    """`clarion dashboard`: the window on its own."""
    from app.store.db import open_store
    from ui.display import application

    app = application()
    if app is None:
        return 3
    engine = open_store(config.database_url)
    window = open_dashboard(engine, config)
    window.show()
    try:
        return app.exec()
    finally:
        engine.dispose()
