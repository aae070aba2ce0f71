"""The main window: today's worklist, the selected patient, recent alerts, status.

- The worklist is a sortable table (name, date of birth, MRN with authority, location,
  arrival, latest risk and tier in colour, icon and words, what became of the alert).
- Selecting a patient shows the patient view (risk and factors, trends, alert history).
- Find any stored patient by name or MRN; Enter opens them here.
- Recent alerts, as a table, with what became of each.
- The status bar and the tray icon say at a glance whether the feed is up (the age of the
  last message), which engine scores, and any problem.
- Alerts go through the banner queue: one banner at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.adoption.log import UNSETTLED, AlertEventType, outcome_words
from app.clinic.alerts import Alert
from app.clinic.service import ClinicService, OpenPatient
from ui.banner import TIER_STYLE, Banner
from ui.banner_queue import BannerQueue
from ui.bridge import Bridge
from ui.patient_view import PatientView
from ui.qt import (
    QApplication,
    QColor,
    QGuiApplication,
    QIcon,
    QKeySequence,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPainter,
    QPixmap,
    QShortcut,
    QSplitter,
    QSystemTrayIcon,
    QTimer,
    QVBoxLayout,
    QWidget,
)
from ui.tables import Column, RowsModel, fit_column_to, row_at, selected_row, table_view

WORKLIST_DELAY_MS = 100  # the worklist follows the feed at most this late, in one step
FEED_QUIET_S = 15 * 60  # no message for this long: the feed may be down; say so
OK, WARN, BAD = "#2e7d32", "#b35c00", "#b00020"


def toast_mode() -> bool:
    """On Wayland an app cannot place or raise its own top-level window (DESIGN.md): show
    the banner inside the main window and as a tray notification instead."""
    return QGuiApplication.platformName().startswith("wayland")


def risk_words(risk: float | None, tier: str, tier_words: str, finding: str = "") -> str:
    """Colour is never alone: icon, words and the figure."""
    if risk is None and not finding:
        return "—"
    icon = TIER_STYLE.get(tier, TIER_STYLE["not-applicable"])[1]
    figure = f" {risk:.0%}" if risk is not None else ""
    return f"{icon} {tier_words or tier}{figure}" + (" · finding" if finding else "")


def tier_colour(tier: str) -> str | None:
    return TIER_STYLE[tier][0] if tier in TIER_STYLE else None


@dataclass
class AlertRow:
    """A recent alert and what became of it."""

    alert: Alert
    status: str = "waiting"


WORKLIST_COLUMNS: list[Column[OpenPatient]] = [
    Column("Name", lambda p: p.name),
    Column("Born", lambda p: p.birth_date),
    Column("MRN", lambda p: p.mrn),
    # Point of care, room, bed: the facility (PV1-3.4) is the same for everyone here.
    Column("Location", lambda p: " ".join(p.location.split("^")[:3]).strip() or p.source,
           tooltip=lambda p: p.location.replace("^", " ") or p.source),
    Column("Arrival", lambda p: f"{p.opened_at.astimezone():%H:%M}", sort=lambda p: p.opened_at),
    Column("Risk", lambda p: risk_words(p.risk, p.tier, p.tier_words, p.finding),
           sort=lambda p: (p.risk if p.risk is not None else -1.0),
           colour=lambda p: tier_colour(p.tier), tooltip=lambda p: p.finding),
    Column("Alert", lambda p: p.status or "—", tooltip=lambda p: p.status),
]
ALERT_COLUMNS: list[Column[AlertRow]] = [
    Column("Time", lambda r: f"{r.alert.generated_at.astimezone():%H:%M:%S}",
           sort=lambda r: r.alert.generated_at),
    Column("Patient", lambda r: r.alert.patient_name),
    Column("Risk", lambda r: risk_words(r.alert.score.risk, r.alert.tier, r.alert.tier_words,
                                        r.alert.score.finding),
           sort=lambda r: r.alert.score.risk, colour=lambda r: tier_colour(r.alert.tier),
           tooltip=lambda r: r.alert.headline),
    Column("Status", lambda r: r.status),
]
SEARCH_COLUMNS: list[Column[tuple[int, str, str, str]]] = [
    Column("Name", lambda r: r[1]), Column("Born", lambda r: r[2]), Column("MRN", lambda r: r[3]),
]
RECENT_ALERTS = 200


def status_icon(colour: str) -> QIcon:
    pixmap = QPixmap(32, 32)
    pixmap.fill(QColor(0, 0, 0, 0))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(colour))
    painter.setPen(QColor("#ffffff"))
    painter.drawEllipse(2, 2, 28, 28)
    painter.end()
    return QIcon(pixmap)


class MainWindow(QMainWindow):
    """Worklist, patient view, recent alerts, status; owns the banner and its queue."""

    def __init__(self, clinic: ClinicService, bridge: Bridge, listening: str,
                 tray: QSystemTrayIcon | None = None, *, following: bool = False) -> None:
        """`listening`: where the feed comes from (the listener's address, or, with
        `following`, the department's journal a workstation follows)."""
        super().__init__()
        self.clinic = clinic
        self.tray = tray
        self.listening = listening
        self.source_verb = "Following" if following else "Listening on"
        self.problem = ""
        self.setWindowTitle("Clarion")
        self.setAccessibleName("Clarion main window")
        self.resize(1280, 780)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Find a patient by name or MRN, then Enter  (Ctrl+F)")
        self.search.setAccessibleName("Find patient")
        self.search.setClearButtonEnabled(True)
        left_layout.addWidget(self.search)
        self.results_model: RowsModel[tuple[int, str, str, str]] = RowsModel(SEARCH_COLUMNS,
                                                                             self)
        self.results = table_view(self.results_model, "Search results; Enter opens the patient",
                                  stretch=(0,))
        self.results.setVisible(False)
        self.results.setMaximumHeight(160)
        left_layout.addWidget(self.results)
        self.patients_title = QLabel("<b>Today's patients</b>")
        left_layout.addWidget(self.patients_title)
        self.worklist_model: RowsModel[OpenPatient] = RowsModel(WORKLIST_COLUMNS, self)
        self.worklist = table_view(self.worklist_model, "Today's patients", sort_column=4,
                                   stretch=(6,), whole=(0, 1, 2, 5))
        left_layout.addWidget(self.worklist, 3)
        left_layout.addWidget(QLabel("<b>Recent alerts</b>"))
        self.alerts_model: RowsModel[AlertRow] = RowsModel(ALERT_COLUMNS, self)
        self.alerts = table_view(self.alerts_model, "Recent alerts", sort_column=0,
                                 stretch=(1, 3))
        fit_column_to(self.alerts, 0, "00:00:00  ")
        fit_column_to(self.alerts, 2, "▲ Elevated risk 100% · finding")
        left_layout.addWidget(self.alerts, 2)

        self.patient_view = PatientView()
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.patient_view)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([860, 420])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(splitter, 1)
        self.toast_area = QVBoxLayout()
        layout.addLayout(self.toast_area)
        self.setCentralWidget(central)

        self.feed_label = QLabel()
        self.feed_label.setAccessibleName("Feed status")
        self.engine_label = QLabel()
        self.engine_label.setAccessibleName("Engine status")
        self.problem_label = QLabel()
        self.problem_label.setAccessibleName("Problem")
        self.problem_label.setStyleSheet(f"color: {BAD}")
        self.statusBar().addWidget(self.feed_label)
        self.statusBar().addWidget(self.problem_label, 1)
        self.statusBar().addPermanentWidget(self.engine_label)
        self._engine_status()

        toast = toast_mode()
        # A child of the window even as a top-level (a tool window): it goes with it.
        self.banner = Banner(self._record, clinic.config.alerts.dwell_view_s, parent=self,
                             top_level=not toast)
        if toast:
            self.toast_area.addWidget(self.banner)
        self.banner.hide()
        self.queue = BannerQueue(self.banner, self._record, clinic.config.alerts.expire_after_s,
                                 place=None if toast else Banner.place_top_right)
        self.banner.painted.connect(self._painted)

        bridge.alert.connect(self.show_alert)
        self._pending_patients: list[OpenPatient] | None = None
        self._worklist_timer = QTimer(self, singleShot=True, interval=WORKLIST_DELAY_MS)
        self._worklist_timer.timeout.connect(self._apply_patients)
        bridge.open_patients.connect(self.patients_changed)
        bridge.problem.connect(self.show_problem)
        self.search.returnPressed.connect(self.run_search)
        self.results.activated.connect(lambda _index: self.open_result())
        self.worklist.selectionModel().currentRowChanged.connect(
            lambda *_: self.show_selected())
        self.alerts.activated.connect(lambda _index: self._select_alert_patient())
        QShortcut(QKeySequence("Ctrl+Shift+B"), self, self.focus_banner)
        QShortcut(QKeySequence("Ctrl+F"), self, self.search.setFocus)
        self._view_refresh = QTimer(self, singleShot=True, interval=300)
        self._view_refresh.timeout.connect(self.show_selected)
        self._status_timer = QTimer(self, interval=1000)
        self._status_timer.timeout.connect(self.refresh_status)
        self._status_timer.start()
        self.refresh_status()

    # -- status -------------------------------------------------------------------------
    def _engine_status(self) -> None:
        selection = self.clinic.selection
        others = [f"{c.name}: {c.reason}" for c in selection.candidates if not c.usable]
        self.engine_label.setText(f"Engine {selection.summary()}")
        self.engine_label.setToolTip("\n".join(["Not used:"] + others) if others else
                                     "Every available engine considered")

    def feed_state(self, now: datetime | None = None) -> tuple[str, str]:
        """(colour, words) for the feed: up with recent messages, quiet, or a problem."""
        now = now or datetime.now(UTC)
        last = self.clinic.last_message_at
        if self.problem:
            return BAD, f"Problem: {self.problem}"
        if last is None:
            return WARN, f"{self.source_verb} {self.listening} · no message yet"
        age = max((now - last).total_seconds(), 0.0)
        words = (f"{age:.0f} s" if age < 120 else f"{age / 60:.0f} min" if age < 7200
                 else f"{age / 3600:.0f} h")
        colour = OK if age < FEED_QUIET_S else WARN
        state = "Feed up" if colour == OK else "Feed quiet"
        return colour, (f"{state} · {self.listening} · last message {words} ago · "
                        f"{self.clinic.messages_seen} processed")

    def refresh_status(self) -> None:
        colour, words = self.feed_state()
        self.feed_label.setText(f"<span style='color:{colour}'>●</span> {words}")
        self.feed_label.setToolTip(words)
        if self.tray is not None:
            self.tray.setIcon(status_icon(colour))
            self.tray.setToolTip(f"Clarion — {words}\nEngine {self.clinic.selection.summary()}")

    def show_problem(self, text: str) -> None:
        """Something the user should know (a sentence); shown until the next one."""
        self.problem = text
        self.problem_label.setText(text)
        self.problem_label.setToolTip(text)
        self.refresh_status()

    # -- the worklist and the patient view ----------------------------------------------
    def patients_changed(self, patients: list[OpenPatient]) -> None:
        """The open patients changed: shown within `WORKLIST_DELAY_MS`, the latest list
        only — a busy feed changes them many times a second, and the banner (which
        arrives at the same moment) goes first."""
        self._pending_patients = patients
        if not self._worklist_timer.isActive():
            self._worklist_timer.start()

    def _apply_patients(self) -> None:
        if self._pending_patients is not None:
            patients, self._pending_patients = self._pending_patients, None
            self.refresh_patients(patients)

    def refresh_patients(self, patients: list[OpenPatient]) -> None:
        selected = selected_row(self.worklist)
        self.worklist_model.set_rows(patients, key=lambda p: p.patient_id)
        self.patients_title.setText(f"<b>Today's patients</b> ({len(patients)})")
        if selected is None:
            return
        patient = self.select_patient(selected.patient_id)
        if patient is None:
            self.patient_view.show_nothing()
        elif patient != selected:  # its risk or alert changed: show the news, once
            self._view_refresh.start()  # the events of one banner come together

    def show_selected(self) -> None:
        patient = selected_row(self.worklist)
        if patient is None:
            self.patient_view.show_nothing()
        else:
            self.show_patient(patient.patient_id)

    def show_patient(self, patient_id: int) -> None:
        try:
            self.patient_view.show_summary(self.clinic.summary(patient_id))
        except KeyError as exc:  # merged away meanwhile
            self.show_problem(f"patient no longer on record ({exc})")
            self.patient_view.show_nothing()

    def run_search(self) -> None:
        found = self.clinic.search(self.search.text())
        self.results_model.set_rows(found)
        self.results.setVisible(bool(found))
        if found:
            self.results.setCurrentIndex(self.results.model().index(0, 0))
            self.results.setFocus()
        else:
            self.statusBar().showMessage(f"No patient matches {self.search.text()!r}", 5000)

    def open_result(self) -> None:
        found = selected_row(self.results)
        if found is not None:
            self.clinic.open_patient(int(found[0]), "manual")
            self.select_patient(int(found[0]))

    def select_patient(self, patient_id: int) -> OpenPatient | None:
        """Make the patient's worklist row the current one; their row, or None if they
        are not on the worklist."""
        for row in range(self.worklist.model().rowCount()):
            patient = row_at(self.worklist, row)
            if patient is not None and patient.patient_id == patient_id:
                self.worklist.setCurrentIndex(self.worklist.model().index(row, 0))
                return patient  # type: ignore[no-any-return]
        return None

    def _select_alert_patient(self) -> None:
        row = selected_row(self.alerts)
        if row is not None:
            self.select_patient(row.alert.patient_id)

    # -- banners ------------------------------------------------------------------------
    def show_alert(self, alert: Alert) -> None:
        """A new alert: into the queue (on screen at once if none is), and the list."""
        self.queue.add(alert)  # first: the banner is what the doctor waits for
        self.alerts_model.prepend(AlertRow(alert), RECENT_ALERTS)
        if toast_mode() and self.tray is not None:
            self.tray.showMessage("Clarion", f"{alert.patient_name}: {alert.headline}",
                                  QSystemTrayIcon.MessageIcon.Warning, 10000)

    def _record(self, alert: Alert, event: AlertEventType, reason: str, comment: str,
                detail: dict[str, object]) -> None:
        self.clinic.record(alert, event, reason=reason, comment=comment, detail=detail)
        status = outcome_words(event, reason)
        if status is None:
            return
        for position, row in enumerate(self.alerts_model.rows):
            if row.alert.alert_id == alert.alert_id:
                if row.status == "waiting" or row.status in UNSETTLED:
                    row.status = status
                    self.alerts_model.row_changed(position)
                break

    def _painted(self, alert: Alert, painted_at: datetime) -> None:
        self._record(alert, AlertEventType.DISPLAYED, "",
                     "", {"latency_ms": alert.latency_at(painted_at)})

    def enable_dashboard(self, open_dashboard: Callable[[], object]) -> None:
        """For admins: the adoption dashboard from the menu (and Ctrl+Shift+D)."""
        menu = self.menuBar().addMenu("&Admin")
        action = menu.addAction("Adoption &dashboard…")
        action.setShortcut(QKeySequence("Ctrl+Shift+D"))
        action.triggered.connect(lambda _=False: open_dashboard())

    def focus_banner(self) -> None:
        """Keyboard users reach the banner with Ctrl+Shift+B."""
        if self.banner.isVisible():
            self.banner.activateWindow()
            self.banner.details_button.setFocus()

    def closeEvent(self, event: object) -> None:  # noqa: N802 - Qt's name
        if self.tray is not None and self.tray.isVisible():
            self.hide()  # keep listening in the tray
            event.ignore()  # type: ignore[attr-defined]
            return
        self.queue.clear()
        self.banner.close()
        super().closeEvent(event)  # type: ignore[arg-type]
        QApplication.instance().quit()  # type: ignore[union-attr]

