"""The risk banner: frameless, top right, non-modal, never steals focus.

It names the patient (name, date of birth, MRN — against wrong-patient errors), shows the
risk and tier as colour *and* icon *and* words, the model and engine, and on Details the
top factors and the screenings with their guideline source. Actions: Details,
Acknowledge, Dismiss with a coded reason (and a comment for "Other"), Snooze. Every
control has an accessible name, everything works from the keyboard (Alt+D/A/I/S, Esc
snoozes), and the banner is announced to screen readers when it appears.

"Viewed" is logged when Details is opened, or when the banner has been on screen for
`dwell_view_s` seconds while Clarion's window was the active one (the dwell rule).

One banner window serves every alert: `present` fills it with the next one (building a
window per alert cost most of the paint time). Which alert is shown, and what happens to
the others meanwhile, is the queue's business (ui/banner_queue.py); the banner offers
previous / next and says how many more wait.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from app.adoption.log import DISMISS_WORDS, AlertEventType, DismissReason
from app.clinic.alerts import Alert
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
    QSizePolicy,
    Qt,
    QTimer,
    QToolButton,
    QVBoxLayout,
    QWidget,
    Signal,
    strip_pixmap,
)

TIER_STYLE = {  # colour, icon, and the words come from the card
    "high": ("#b00020", "▲"),
    "elevated": ("#b35c00", "●"),
    "low": ("#2e7d32", "○"),
    "not-applicable": ("#455a64", "ⓘ"),
}

Recorder = Callable[[Alert, AlertEventType, str, str, dict[str, object]], None]


class Banner(QFrame):
    """The alert on screen (one window, reused for each alert)."""

    #: Emitted once per alert, when the banner has first been painted with it:
    #: (alert, painted at UTC).
    painted = Signal(object, object)
    #: Emitted when the clinician is done with the alert on screen (acknowledged,
    #: dismissed, snoozed): (alert).
    finished = Signal(object)
    #: The clinician asked for the previous (-1) or next (+1) alert in the queue.
    step = Signal(int)

    WIDTH = 460

    def __init__(self, record: Recorder, dwell_view_s: float, parent: QWidget | None = None,
                 top_level: bool = True) -> None:
        super().__init__(parent)
        self.alert: Alert | None = None
        self._record = record
        self._viewed: set[str] = set()
        self._painted_for: str | None = None
        if top_level:
            # Shown without activation, so it never takes focus from the EHR; but it can be
            # focused on purpose (a click, or Ctrl+Shift+B) for keyboard users.
            self.setWindowFlags(Qt.WindowType.FramelessWindowHint | Qt.WindowType.Tool
                                | Qt.WindowType.WindowStaysOnTopHint)
            self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setObjectName("clarionBanner")
        # One style sheet for every tier, chosen by a property: setting a new sheet for
        # each alert would restyle every child widget.
        self.setStyleSheet(
            "#clarionBanner { background: white; border: 3px solid #455a64; "
            "border-radius: 6px; } QLabel { color: #1a1a1a; } "
            + " ".join(f'#clarionBanner[tier="{tier}"] {{ border-color: {colour}; }}'
                       for tier, (colour, _) in TIER_STYLE.items()))

        self._layout = layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.patient = QLabel()
        self.patient.setWordWrap(True)  # long names and MRNs wrap, never cut
        self.patient.setAccessibleName("Patient")
        self.patient.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        top.addWidget(self.patient, 1)
        self.previous_button = QToolButton()
        self.previous_button.setText("◀")
        self.previous_button.setAccessibleName("Previous alert")
        self.previous_button.setToolTip("Previous alert (Alt+Left)")
        self.queue_label = QLabel()
        self.queue_label.setAccessibleName("Alerts waiting")
        self.next_button = QToolButton()
        self.next_button.setText("▶")
        self.next_button.setAccessibleName("Next alert")
        self.next_button.setToolTip("Next alert (Alt+Right)")
        for widget in (self.previous_button, self.queue_label, self.next_button):
            top.addWidget(widget, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(top)
        self.risk_label = QLabel()
        self.risk_label.setWordWrap(True)
        self.risk_label.setAccessibleName("Risk")
        layout.addWidget(self.risk_label)
        self.finding = QLabel()
        self.finding.setWordWrap(True)
        self.finding.setAccessibleName("Finding")
        layout.addWidget(self.finding)
        self.order_label = QLabel()
        self.order_label.setWordWrap(True)
        self.order_label.setAccessibleName("Recommended screening")
        layout.addWidget(self.order_label)

        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setAccessibleName("Details")
        self.details.setVisible(False)
        layout.addWidget(self.details)
        # An ECG alert's strip, drawn when the details are first opened (never on the
        # banner's own path: matplotlib takes tens of ms).
        self.strip_view = QLabel()
        self.strip_view.setAccessibleName("ECG strip with the detected beats marked")
        self.strip_view.setVisible(False)
        self._strip_for: str | None = None
        layout.addWidget(self.strip_view)

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
        self.meta = QLabel()
        self.meta.setWordWrap(True)
        self.meta.setAccessibleName("Model")
        layout.addWidget(self.meta)

        self.details_button.clicked.connect(self.toggle_details)
        self.ack_button.clicked.connect(self.acknowledge)
        self.snooze_button.clicked.connect(self.snooze)
        self.previous_button.clicked.connect(lambda: self.step.emit(-1))
        self.next_button.clicked.connect(lambda: self.step.emit(1))
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.snooze)
        QShortcut(QKeySequence("Alt+Left"), self, lambda: self.step.emit(-1))
        QShortcut(QKeySequence("Alt+Right"), self, lambda: self.step.emit(1))
        self.setFixedWidth(self.WIDTH)

        self._dwell = QTimer(self, singleShot=True, interval=int(dwell_view_s * 1000))
        self._dwell.timeout.connect(self._dwell_elapsed)

    # -- content ------------------------------------------------------------------------
    def present(self, alert: Alert, position: int = 0, total: int = 1) -> None:
        """Show `alert` (the `position`-th of `total` waiting, from 0)."""
        same = self.alert is not None and self.alert.alert_id == alert.alert_id
        self.alert = alert
        self.set_queue(position, total)
        if same:
            return
        colour, icon = TIER_STYLE.get(alert.tier, TIER_STYLE["elevated"])
        tier = alert.tier if alert.tier in TIER_STYLE else "elevated"
        if self.property("tier") != tier:  # restyle only when the colour changes
            self.setProperty("tier", tier)
            self.style().unpolish(self)
            self.style().polish(self)
        self.setAccessibleName(f"Clarion alert: {alert.headline}")
        self.setAccessibleDescription(
            f"For {alert.patient_name}, born {alert.birth_date}, MRN {alert.mrn}")
        self.patient.setText(f"<b>{alert.patient_name}</b> · born {alert.birth_date} · "
                             f"MRN {alert.mrn}")
        if alert.score.summary:  # a recording's finding: its own words
            statement = alert.score.summary.removeprefix(alert.tier_words).lstrip(": ")
        elif alert.score.risk is not None:
            statement = (f"{alert.score.display} risk <b>{alert.score.risk:.0%}</b> within "
                         "12 months")
        else:
            statement = alert.score.finding
        self.risk_label.setText(
            f"<span style='color:{colour}; font-size:15pt'>{icon}</span> "
            f"<b style='color:{colour}'>{alert.tier_words}</b> — {statement}")
        self.risk_label.setAccessibleDescription(alert.headline)
        show_finding = bool(alert.score.finding and alert.score.risk is not None)
        self.finding.setText(f"<b>{alert.score.finding}</b>" if show_finding else "")
        self.finding.setVisible(show_finding)
        order = ", ".join(r.name for r in alert.recommendations) or "no test needed now"
        self.order_label.setText(f"Order: <b>{order}</b>")
        self.details.setText(self._details_html())
        self.details.setVisible(False)
        self.strip_view.setVisible(False)
        self.details_button.setText("&Details")
        self.comment.clear()
        self.comment.setVisible(False)
        self.meta.setText(f"<small>{alert.model} · {alert.engine} · synthetic-data model, "
                          "not validated for clinical use</small>")
        self._painted_for = None
        self._dwell.start()
        self.fit()
        if self.isVisible():
            self.update()
            QAccessible.updateAccessibility(QAccessibleEvent(self, QAccessible.Event.Alert))

    def set_queue(self, position: int, total: int) -> None:
        """"2 more" and the arrows, for `total` alerts waiting with this one."""
        more = total - 1
        self.queue_label.setText(f"{position + 1} of {total} · {more} more" if more else "")
        self.queue_label.setVisible(more > 0)
        self.previous_button.setVisible(more > 0)
        self.next_button.setVisible(more > 0)
        self.previous_button.setEnabled(position > 0)
        self.next_button.setEnabled(position < total - 1)
        self.fit()  # the arrows narrow the patient line: it may wrap once more

    def needed_height(self) -> int:
        """The height every line needs at the banner's fixed width."""
        layout = self._layout
        # The labels' new text: no cached height-for-width, in the nested rows either
        # (their own invalidation waits for a posted event).
        for i in range(layout.count()):
            item = layout.itemAt(i)
            if item is not None:
                item.invalidate()
        layout.invalidate()
        height = layout.totalHeightForWidth(self.WIDTH) if layout.hasHeightForWidth() \
            else layout.totalSizeHint().height()
        return max(height, layout.totalMinimumSize().height())

    def fits(self) -> bool:
        """Whether every line has the height it needs (nothing is cut)."""
        return self.height() >= self.needed_height()

    def fit(self) -> None:
        """Height for the fixed width, with the wrapped lines counted."""
        self.setFixedHeight(self.needed_height())

    def _details_html(self) -> str:
        alert = self.alert
        assert alert is not None
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
        self.move(area.right() - self.width() - 16, area.top() + 16)

    def showEvent(self, event: object) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)  # type: ignore[arg-type]
        self._dwell.start()
        QAccessible.updateAccessibility(QAccessibleEvent(self, QAccessible.Event.Alert))

    def hideEvent(self, event: object) -> None:  # noqa: N802 - Qt's name
        super().hideEvent(event)  # type: ignore[arg-type]
        self._dwell.stop()

    def paintEvent(self, event: object) -> None:  # noqa: N802 - Qt's name
        super().paintEvent(event)  # type: ignore[arg-type]
        alert = self.alert
        if alert is not None and self._painted_for != alert.alert_id:
            self._painted_for = alert.alert_id
            self.painted.emit(alert, datetime.now(UTC))

    # -- actions ------------------------------------------------------------------------
    def _log(self, event: AlertEventType, reason: str = "", comment: str = "",
             detail: dict[str, object] | None = None) -> None:
        if self.alert is not None:
            self._record(self.alert, event, reason, comment, detail or {})

    def _mark_viewed(self, how: str) -> None:
        if self.alert is not None and self.alert.alert_id not in self._viewed:
            self._viewed.add(self.alert.alert_id)
            self._log(AlertEventType.VIEWED, reason=how)

    def was_viewed(self, alert: Alert) -> bool:
        return alert.alert_id in self._viewed

    def _dwell_elapsed(self) -> None:
        if self.isVisible() and \
                QGuiApplication.applicationState() == Qt.ApplicationState.ApplicationActive:
            self._mark_viewed("dwell")

    def toggle_details(self) -> None:
        showing = not self.details.isVisible()
        self.details.setVisible(showing)
        strip = self.alert.score.strip if self.alert is not None else None
        if showing and strip is not None and self.alert is not None and \
                self._strip_for != self.alert.alert_id:
            self.strip_view.setPixmap(strip_pixmap(strip))
            self._strip_for = self.alert.alert_id
        self.strip_view.setVisible(showing and strip is not None)
        self.details_button.setText("Hide &details" if showing else "&Details")
        if showing:
            self._mark_viewed("details")
        self.fit()

    def _finish(self, event: AlertEventType, reason: str = "", comment: str = "") -> None:
        alert = self.alert
        if alert is None:
            return
        self._log(event, reason, comment)
        self._viewed.discard(alert.alert_id)
        self.alert = None
        self.finished.emit(alert)

    def acknowledge(self) -> None:
        self._finish(AlertEventType.ACKNOWLEDGED)

    def dismiss(self, reason: DismissReason, comment: str = "") -> None:
        if reason is DismissReason.OTHER and not comment.strip():
            self.comment.setVisible(True)  # "Other" needs a word of why
            self.comment.setFocus()
            self.fit()
            return
        self._finish(AlertEventType.DISMISSED, reason.value, comment.strip())

    def snooze(self) -> None:
        self._finish(AlertEventType.SNOOZED)
