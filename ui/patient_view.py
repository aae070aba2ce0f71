"""The patient view: who, each model's current risk and why, the trends behind it with
their ranges and thresholds, and what became of the patient's alerts.

The figures come from the core (`ClinicService.summary`) and the chart from
`app.charts.trend_figure`, the same drawing a report can use; this module only lays
them out.
"""

from __future__ import annotations

from app.charts import trend_figure
from app.clinic.patient_view import AlertHistoryRow, PatientSummary
from ui.banner import TIER_STYLE
from ui.qt import (
    QFrame,
    QLabel,
    QScrollArea,
    QSizePolicy,
    Qt,
    QVBoxLayout,
    QWidget,
    figure_canvas,
    strip_pixmap,
)
from ui.tables import Column, RowsModel, table_view

HISTORY_COLUMNS: list[Column[AlertHistoryRow]] = [
    Column("When", lambda r: f"{r.at.astimezone():%Y-%m-%d %H:%M}", sort=lambda r: r.at),
    Column("Risk", lambda r: f"{r.risk:.0%}" if r.risk is not None else "—",
           sort=lambda r: r.risk),
    Column("Tier", lambda r: r.tier, colour=lambda r: TIER_STYLE.get(r.tier, ("", ""))[0]),
    Column("Decision", lambda r: r.decision, tooltip=lambda r: r.decision),
    Column("Outcome", lambda r: r.outcome + (" · screening done" if r.screening_done else ""),
           tooltip=lambda r: r.outcome),
]


class PatientView(QScrollArea):
    """The right-hand pane of the main window, for the selected patient."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setAccessibleName("Patient view")
        self.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        self._layout = QVBoxLayout(body)
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.heading.setAccessibleName("Patient")
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._layout.addWidget(self.heading)
        self.risks = QLabel()
        self.risks.setWordWrap(True)
        self.risks.setTextFormat(Qt.TextFormat.RichText)
        self.risks.setAccessibleName("Current risk and its top factors")
        self._layout.addWidget(self.risks)
        self.strip_view = QLabel()
        self.strip_view.setAccessibleName("Latest ECG strip with the detected beats marked")
        self.strip_view.setVisible(False)
        self._layout.addWidget(self.strip_view)
        self.chart_title = QLabel("<b>Trends</b>")
        self._layout.addWidget(self.chart_title)
        self.canvas: QWidget | None = None
        self.history_title = QLabel("<b>Alert history</b>")
        self._layout.addWidget(self.history_title)
        self.history: RowsModel[AlertHistoryRow] = RowsModel(HISTORY_COLUMNS, self)
        self.history_view = table_view(self.history, "Alert history", sort_column=0)
        self.history_view.setMinimumHeight(120)
        self._layout.addWidget(self.history_view)
        self.setWidget(body)
        self.summary: PatientSummary | None = None
        self.show_nothing()

    def show_nothing(self) -> None:
        self.summary = None
        self.heading.setText("<i>Select a patient in the worklist (or find one by name or "
                             "MRN) to see their risk, trends and alerts.</i>")
        self.risks.setText("")
        self._set_canvas(None)
        self.history.set_rows([])
        for widget in (self.chart_title, self.history_title, self.history_view, self.strip_view):
            widget.setVisible(False)

    def show_summary(self, summary: PatientSummary) -> None:
        self.summary = summary
        age = f", {summary.age} y" if summary.age is not None else ""
        sex = f" · {summary.sex}" if summary.sex else ""
        self.heading.setText(f"<span style='font-size:13pt'><b>{summary.name}</b></span><br>"
                             f"born {summary.birth_date}{age}{sex} · MRN {summary.mrn}")
        self.risks.setText(self._risks_html(summary))
        strip = next((score.strip for score in summary.scores if score.strip is not None), None)
        if strip is not None:
            self.strip_view.setPixmap(strip_pixmap(strip, width_in=7.0, height_in=1.8))
        self.strip_view.setVisible(strip is not None)
        self._set_canvas(figure_canvas(trend_figure(summary.trends)))
        self.history.set_rows(summary.alerts)
        for widget in (self.chart_title, self.history_title, self.history_view):
            widget.setVisible(True)
        self.history_view.resizeColumnsToContents()

    @staticmethod
    def _risks_html(summary: PatientSummary) -> str:
        parts = []
        for score in summary.scores:
            colour, icon = TIER_STYLE.get(score.tier, TIER_STYLE["not-applicable"])
            if score.summary:  # a recording: its finding and when it was taken
                when = f" ({score.at:%Y-%m-%d %H:%M} UTC)" if score.at else ""
                line = (f"<span style='color:{colour}'>{icon}</span> <b>{score.display}"
                        f"</b>{when}: {score.summary}")
            elif score.risk is not None:
                line = (f"<span style='color:{colour}'>{icon} <b>{score.tier_words}</b></span>"
                        f" — {score.display} risk <b>{score.risk:.0%}</b> within 12 months")
            else:
                line = (f"<span style='color:{colour}'>{icon}</span> {score.display}: "
                        f"{score.out_of_scope or 'not scored'}")
            if score.finding:
                line += f"<br><b>{score.finding}</b>"
            factors = "".join(f"<li>{f.words}</li>" for f in score.factors)
            parts.append(line + (f"<ul>{factors}</ul>" if factors else ""))
        parts.append(f"<small>{summary.model} · {summary.engine} · synthetic-data model, not "
                     "validated for clinical use</small>")
        return "<br>".join(parts)

    def _set_canvas(self, canvas: QWidget | None) -> None:
        if self.canvas is not None:
            self._layout.removeWidget(self.canvas)
            self.canvas.setParent(None)  # type: ignore[call-overload]
            self.canvas.deleteLater()
        self.canvas = canvas
        if canvas is not None:
            canvas.setAccessibleName("Trends: HbA1c, fasting glucose, BMI and blood pressure "
                                     "over time, with reference ranges and thresholds")
            canvas.setMinimumHeight(420)
            canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self._layout.insertWidget(self._layout.indexOf(self.chart_title) + 1, canvas)
            canvas.show()
