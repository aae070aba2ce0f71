"""The small main window: today's patients, recent alerts, feed and engine status."""

from __future__ import annotations

from datetime import UTC, datetime

from app.alerts import Alert, AlertEventType
from app.clinic import ClinicService, OpenPatient
from ui.banner import Banner
from ui.bridge import Bridge
from ui.qt import (
    QApplication,
    QGuiApplication,
    QHBoxLayout,
    QKeySequence,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QShortcut,
    QSplitter,
    QSystemTrayIcon,
    Qt,
    QTimer,
    QVBoxLayout,
    QWidget,
)


def toast_mode() -> bool:
    """On Wayland an app cannot place or raise its own top-level window (DESIGN.md): show
    the banner inside the main window and as a tray notification instead."""
    return QGuiApplication.platformName().startswith("wayland")


class MainWindow(QMainWindow):
    """Today's patients (open here), search by name or MRN, recent alerts, status."""

    def __init__(self, clinic: ClinicService, bridge: Bridge, listening: str,
                 tray: QSystemTrayIcon | None = None) -> None:
        super().__init__()
        self.clinic = clinic
        self.tray = tray
        self.listening = listening
        self.banners: list[Banner] = []
        self.setWindowTitle("Clarion")
        self.setAccessibleName("Clarion main window")
        self.resize(760, 460)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(QLabel("<b>Today's patients</b>"))
        self.patients = QListWidget()
        self.patients.setAccessibleName("Today's patients")
        left_layout.addWidget(self.patients)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Find a patient by name or MRN, then Enter")
        self.search.setAccessibleName("Find patient")
        left_layout.addWidget(self.search)
        self.results = QListWidget()
        self.results.setAccessibleName("Search results; Enter opens the patient")
        left_layout.addWidget(self.results)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.addWidget(QLabel("<b>Recent alerts</b>"))
        self.alerts = QListWidget()
        self.alerts.setAccessibleName("Recent alerts")
        right_layout.addWidget(self.alerts)
        self.toast_area = QVBoxLayout()
        right_layout.addLayout(self.toast_area)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.addWidget(splitter)
        self.setCentralWidget(central)

        self.feed_label = QLabel()
        self.feed_label.setAccessibleName("Feed status")
        self.engine_label = QLabel(self._engine_text())
        self.engine_label.setAccessibleName("Engine status")
        self.statusBar().addWidget(self.feed_label, 1)
        self.statusBar().addPermanentWidget(self.engine_label)

        bridge.alert.connect(self.show_alert)
        bridge.open_patients.connect(self.refresh_patients)
        self.search.returnPressed.connect(self.run_search)
        self.results.itemActivated.connect(self.open_result)
        QShortcut(QKeySequence("Ctrl+Shift+B"), self, self.focus_banner)
        self._status_timer = QTimer(self, interval=1000)
        self._status_timer.timeout.connect(self.refresh_status)
        self._status_timer.start()
        self.refresh_status()

    def _engine_text(self) -> str:
        selection = self.clinic.selection
        others = [f"{c.name}: {c.reason.split(':')[0]}" for c in selection.candidates
                  if not c.usable]
        return f"Engine {selection.summary()}" + (f" — not used: {'; '.join(others)}"
                                                    if others else "")

    def refresh_status(self) -> None:
        last = self.clinic.last_message_at
        when = last.astimezone().strftime("%H:%M:%S") if last else "none yet"
        self.feed_label.setText(f"Listening on {self.listening} · last message {when} · "
                                f"{self.clinic.messages_seen} processed")

    def refresh_patients(self, patients: list[OpenPatient]) -> None:
        self.patients.clear()
        for p in patients:
            item = QListWidgetItem(f"{p.name}  ·  born {p.birth_date}  ·  MRN {p.mrn}  "
                                   f"({p.source} {p.opened_at.astimezone():%H:%M})")
            item.setData(Qt.ItemDataRole.UserRole, p.patient_id)
            self.patients.addItem(item)

    def run_search(self) -> None:
        self.results.clear()
        for patient_id, name, dob, mrn in self.clinic.search(self.search.text()):
            item = QListWidgetItem(f"{name} · born {dob} · MRN {mrn}")
            item.setData(Qt.ItemDataRole.UserRole, patient_id)
            self.results.addItem(item)

    def open_result(self, item: QListWidgetItem) -> None:
        self.clinic.open_patient(int(item.data(Qt.ItemDataRole.UserRole)), "manual")

    # -- banners ------------------------------------------------------------------------
    def show_alert(self, alert: Alert) -> Banner:
        config = self.clinic.config.alerts
        toast = toast_mode()
        banner = Banner(alert, self._record, config.expire_after_s, config.dwell_view_s,
                        parent=None if not toast else self, top_level=not toast)
        banner.painted.connect(self._painted)
        banner.finished.connect(self._finished)
        self.banners.append(banner)
        self.alerts.insertItem(0, f"{alert.generated_at.astimezone():%H:%M} "
                                  f"{alert.patient_name}: {alert.headline}")
        if toast:
            self.toast_area.addWidget(banner)
            if self.tray is not None:
                self.tray.showMessage("Clarion", f"{alert.patient_name}: {alert.headline}",
                                      QSystemTrayIcon.MessageIcon.Warning, 10000)
        else:
            banner.place_top_right()
        banner.show()
        return banner

    def _record(self, alert: Alert, event: AlertEventType, reason: str, comment: str,
                detail: dict[str, object]) -> None:
        self.clinic.record(alert, event, reason=reason, comment=comment, detail=detail)

    def _painted(self, alert: Alert, painted_at: datetime) -> None:
        self.clinic.record(alert, AlertEventType.DISPLAYED,
                           detail={"latency_ms": alert.latency_at(painted_at)})

    def _finished(self, banner: Banner) -> None:
        if banner in self.banners:
            self.banners.remove(banner)
        banner.deleteLater()

    def focus_banner(self) -> None:
        """Keyboard users reach the newest banner with Ctrl+Shift+B."""
        if self.banners:
            banner = self.banners[-1]
            banner.activateWindow()
            banner.details_button.setFocus()

    def closeEvent(self, event: object) -> None:  # noqa: N802 - Qt's name
        if self.tray is not None and self.tray.isVisible():
            self.hide()  # keep listening in the tray
            event.ignore()  # type: ignore[attr-defined]
            return
        for banner in list(self.banners):
            banner.close()
        super().closeEvent(event)  # type: ignore[arg-type]
        QApplication.instance().quit()  # type: ignore[union-attr]


def now_utc() -> datetime:
    return datetime.now(UTC)
