"""The risk banner: frameless, top right, non-modal, never steals focus.

It names the patient (name, date of birth, MRN — against wrong-patient errors), shows the
risk and tier as colour *and* icon *and* words, the model and engine, and on Details the
top factors and the screenings with their guideline source. Actions: Details,
Acknowledge, Dismiss with a coded reason (and a comment for "Other"), Snooze. Every
control has an accessible name, everything works from the keyboard (Alt+D/A/I/S, Esc
snoozes), and the banner is announced to screen readers when it appears.

"Viewed" is logged when Details is opened, or when the banner has been on screen for
`dwell_view_s` seconds while Clarion's window was the active one (the dwell rule).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from app.alerts import DISMISS_WORDS, Alert, AlertEventType, DismissReason
from ui.qt import (
    QAccessible,
    QAccessibleEvent,
    QFrame,
    QGuiApplication,
    QHBoxLayout,
    QKeySequence,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QShortcut,
    Qt,
    QTimer,
    QVBoxLayout,
    QWidget,
    Signal,
)

TIER_STYLE = {  # colour, icon, and the words come from the card
    "high": ("#b00020", "▲"),
    "elevated": ("#b35c00", "●"),
    "low": ("#2e7d32", "○"),
    "not-applicable": ("#455a64", "ⓘ"),
}

Recorder = Callable[[Alert, AlertEventType, str, str, dict[str, object]], None]


class Banner(QFrame):
    """One alert on screen."""

    #: Emitted once the banner has been painted: (alert, painted at UTC).
    painted = Signal(object, object)
    #: Emitted when the banner is done (acknowledged, dismissed, snoozed, expired).
    finished = Signal(object)

    def __init__(self, alert: Alert, record: Recorder, expire_after_s: float,
                 dwell_view_s: float, parent: QWidget | None = None,
                 top_level: bool = True) -> None:
        super().__init__(parent)
        self.alert = alert
        self._record = record
        self._viewed = False
        self._painted = False
        self._done = False
        if top_level:
            # Shown without activation, so it never takes focus from the EHR; but it can be
            # focused on purpose (a click, or Ctrl+Shift+B) for keyboard users.
            self.setWindowFlags(Qt.WindowType.FramelessWindowHint | Qt.WindowType.Tool
                                | Qt.WindowType.WindowStaysOnTopHint)
            self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setObjectName("clarionBanner")
        colour, icon = TIER_STYLE.get(alert.tier, TIER_STYLE["elevated"])
        self.setStyleSheet(
            f"#clarionBanner {{ background: white; border: 3px solid {colour}; "
            "border-radius: 6px; } QLabel { color: #1a1a1a; }")
        self.setAccessibleName(f"Clarion alert: {alert.headline}")
        self.setAccessibleDescription(
            f"For {alert.patient_name}, born {alert.birth_date}, MRN {alert.mrn}")

        layout = QVBoxLayout(self)
        patient = QLabel(f"<b>{alert.patient_name}</b> · born {alert.birth_date} · "
                         f"MRN {alert.mrn}")
        patient.setAccessibleName("Patient")
        layout.addWidget(patient)
        risk_text = (f"<span style='color:{colour}; font-size:15pt'>{icon}</span> "
                     f"<b style='color:{colour}'>{alert.tier_words}</b> — "
                     + (f"{alert.score.display} risk <b>{alert.score.risk:.0%}</b> within 12 "
                        "months" if alert.score.risk is not None else alert.score.finding))
        self.risk_label = QLabel(risk_text)
        self.risk_label.setWordWrap(True)
        self.risk_label.setAccessibleName("Risk")
        self.risk_label.setAccessibleDescription(alert.headline)
        layout.addWidget(self.risk_label)
        if alert.score.finding and alert.score.risk is not None:
            finding = QLabel(f"<b>{alert.score.finding}</b>")
            finding.setWordWrap(True)
            finding.setAccessibleName("Finding")
            layout.addWidget(finding)
        order = ", ".join(r.name for r in alert.recommendations) or "no test needed now"
        self.order_label = QLabel(f"Order: <b>{order}</b>")
        self.order_label.setAccessibleName("Recommended screening")
        layout.addWidget(self.order_label)

        self.details = QLabel(self._details_html())
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setAccessibleName("Details")
        self.details.setVisible(False)
        layout.addWidget(self.details)

        buttons = QHBoxLayout()
        self.details_button = QPushButton("&Details")
        self.ack_button = QPushButton("&Acknowledge")
        self.dismiss_button = QPushButton("D&ismiss…")
        self.snooze_button = QPushButton("&Snooze")
        for button, name in ((self.details_button, "Show details"),
                             (self.ack_button, "Acknowledge alert"),
                             (self.dismiss_button, "Dismiss alert with a reason"),
                             (self.snooze_button, "Snooze alert")):
            button.setAccessibleName(name)
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.dismiss_menu = QMenu(self)
        self.dismiss_menu.setAccessibleName("Dismiss reason")
        for reason in DismissReason:
            action = self.dismiss_menu.addAction(DISMISS_WORDS[reason])
            action.setData(reason.value)
            action.triggered.connect(lambda _=False, r=reason: self.dismiss(r))
        self.dismiss_button.setMenu(self.dismiss_menu)
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Why? (Enter to dismiss)")
        self.comment.setAccessibleName("Dismissal comment")
        self.comment.setVisible(False)
        self.comment.returnPressed.connect(
            lambda: self.dismiss(DismissReason.OTHER, self.comment.text()))
        layout.addWidget(self.comment)
        meta = QLabel(f"<small>{alert.model} · {alert.engine} · synthetic-data model, "
                      "not validated for clinical use</small>")
        meta.setAccessibleName("Model")
        layout.addWidget(meta)

        self.details_button.clicked.connect(self.toggle_details)
        self.ack_button.clicked.connect(self.acknowledge)
        self.snooze_button.clicked.connect(self.snooze)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.snooze)
        self.setFixedWidth(440)

        self._expiry = QTimer(self, singleShot=True, interval=int(expire_after_s * 1000))
        self._expiry.timeout.connect(self.expire)
        self._dwell = QTimer(self, singleShot=True, interval=int(dwell_view_s * 1000))
        self._dwell.timeout.connect(self._dwell_elapsed)

    def _details_html(self) -> str:
        alert = self.alert
        factors = "".join(f"<li>{f.words}</li>" for f in alert.score.factors) or \
            "<li>no single factor stands out</li>"
        sources = list(dict.fromkeys(r.source for r in alert.recommendations))
        if len(sources) == 1:  # one guideline for every test: say it once
            tests = "".join(f"<li><b>{r.name}</b></li>" for r in alert.recommendations)
            tests += f"</ul><small>Source: {sources[0]}</small><ul>"
        else:
            tests = "".join(f"<li><b>{r.name}</b> — {r.source}</li>"
                            for r in alert.recommendations)
        done = "".join(f"<li>{d}</li>" for d in alert.already_done)
        return (f"<b>Why</b><ul>{factors}</ul>"
                + (f"<b>Screenings</b><ul>{tests}</ul>" if tests else "")
                + (f"<b>Already done</b><ul>{done}</ul>" if done else ""))

    # -- showing ------------------------------------------------------------------------
    def place_top_right(self) -> None:
        screen = QGuiApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        self.adjustSize()
        self.move(area.right() - self.width() - 16, area.top() + 16)

    def showEvent(self, event: object) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)  # type: ignore[arg-type]
        self._expiry.start()
        self._dwell.start()
        QAccessible.updateAccessibility(QAccessibleEvent(self, QAccessible.Event.Alert))

    def paintEvent(self, event: object) -> None:  # noqa: N802 - Qt's name
        super().paintEvent(event)  # type: ignore[arg-type]
        if not self._painted:
            self._painted = True
            self.painted.emit(self.alert, datetime.now(UTC))

    # -- actions ------------------------------------------------------------------------
    def _log(self, event: AlertEventType, reason: str = "", comment: str = "",
             detail: dict[str, object] | None = None) -> None:
        self._record(self.alert, event, reason, comment, detail or {})

    def _mark_viewed(self, how: str) -> None:
        if not self._viewed:
            self._viewed = True
            self._log(AlertEventType.VIEWED, reason=how)

    def _dwell_elapsed(self) -> None:
        if QGuiApplication.applicationState() == Qt.ApplicationState.ApplicationActive:
            self._mark_viewed("dwell")

    def toggle_details(self) -> None:
        showing = not self.details.isVisible()
        self.details.setVisible(showing)
        self.details_button.setText("Hide &details" if showing else "&Details")
        if showing:
            self._mark_viewed("details")
        self.adjustSize()

    def _finish(self, event: AlertEventType, reason: str = "", comment: str = "") -> None:
        if self._done:
            return
        self._done = True
        self._expiry.stop()
        self._dwell.stop()
        self._log(event, reason, comment)
        self.hide()
        self.finished.emit(self)

    def acknowledge(self) -> None:
        self._finish(AlertEventType.ACKNOWLEDGED)

    def dismiss(self, reason: DismissReason, comment: str = "") -> None:
        if reason is DismissReason.OTHER and not comment.strip():
            self.comment.setVisible(True)  # "Other" needs a word of why
            self.comment.setFocus()
            self.adjustSize()
            return
        self._finish(AlertEventType.DISMISSED, reason.value, comment.strip())

    def snooze(self) -> None:
        self._finish(AlertEventType.SNOOZED)

    def expire(self) -> None:
        self._finish(AlertEventType.EXPIRED)
