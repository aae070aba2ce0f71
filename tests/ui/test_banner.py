"""The banner on its own: content, accessibility, keyboard, every action logged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.adoption.log import AlertEventType, DismissReason
from app.clinic.alerts import Alert
from app.clinic.scoring import Factor, Score
from engines.card import Screening
from ui.banner import Banner
from ui.qt import Qt


def make_alert(risk: float = 0.42, tier: str = "high", name: str = "QUIXOTE, Alonso",
               alert_id: str = "a1b2c3d4-0000-0000-0000-000000000000",
               at: datetime | None = None) -> Alert:
    words = {"high": "High risk", "elevated": "Elevated risk"}.get(tier, "Low risk")
    score = Score("t2d_12m", "Type 2 diabetes", risk, tier, words,
                  (Factor("HbA1c", "HbA1c 6.3 % (5.9 % a year ago)", 0.2),
                   Factor("BMI", "BMI 33.1", 0.05)))
    return Alert(alert_id, 7, name, "1962-01-01",
                 "MRN42 (H)", score, tier, words, "t2d 1.0.0", "onnxruntime-cpu",
                 [Screening("hba1c", "HbA1c", ("4548-4",), "ADA Standards of Care 2025")],
                 [], at or datetime.now(UTC), {"features": 1.0, "inference": 0.5})


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[AlertEventType, str, str]] = []

    def __call__(self, alert: Alert, event: AlertEventType, reason: str, comment: str,
                 detail: dict[str, Any]) -> None:
        self.events.append((event, reason, comment))


def _banner(qtbot: Any, recorder: Recorder, dwell: float = 60) -> Banner:
    banner = Banner(recorder, dwell)
    qtbot.addWidget(banner)
    banner.present(make_alert())
    banner.show()
    qtbot.waitExposed(banner)
    return banner


def test_shows_patient_risk_tier_in_words_and_icon(qtbot: Any) -> None:
    banner = _banner(qtbot, Recorder())
    text = banner.risk_label.text()
    assert "▲" in text and "High risk" in text and "42%" in text  # icon + words + colour
    assert "QUIXOTE, Alonso" in banner.accessibleDescription()
    assert "1962-01-01" in banner.accessibleDescription() and "MRN42" in banner.accessibleDescription()
    assert "HbA1c" in banner.order_label.text()
    assert banner.testAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
    assert banner.windowFlags() & Qt.WindowType.FramelessWindowHint
    assert not banner.isActiveWindow()  # appearing did not take the focus
    for button in (banner.details_button, banner.ack_button, banner.dismiss_button,
                   banner.snooze_button):
        assert button.accessibleName()
    banner.close()


def test_details_is_viewed_once_and_shows_factors_and_source(qtbot: Any) -> None:
    recorder = Recorder()
    banner = _banner(qtbot, recorder)
    assert not banner.details.isVisible()
    qtbot.mouseClick(banner.details_button, Qt.MouseButton.LeftButton)
    assert banner.details.isVisible()
    assert "HbA1c 6.3 % (5.9 % a year ago)" in banner.details.text()
    assert "ADA Standards of Care 2025" in banner.details.text()
    qtbot.mouseClick(banner.details_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(banner.details_button, Qt.MouseButton.LeftButton)
    assert recorder.events == [(AlertEventType.VIEWED, "details", "")]
    banner.close()


@pytest.mark.parametrize("reason", [DismissReason.ALREADY_SCREENED, DismissReason.NOT_RELEVANT,
                                    DismissReason.PATIENT_DECLINED])
def test_dismiss_with_coded_reason(qtbot: Any, reason: DismissReason) -> None:
    recorder = Recorder()
    banner = _banner(qtbot, recorder)
    [action] = [a for a in banner.dismiss_menu.actions() if a.data() == reason.value]
    with qtbot.waitSignal(banner.finished):
        action.trigger()
    assert recorder.events == [(AlertEventType.DISMISSED, reason.value, "")]
    assert banner.alert is None  # done with it; what shows next is the queue's business


def test_other_needs_a_comment(qtbot: Any) -> None:
    recorder = Recorder()
    banner = _banner(qtbot, recorder)
    banner.dismiss(DismissReason.OTHER)
    assert banner.comment.isVisible() and recorder.events == []
    qtbot.keyClicks(banner.comment, "seen by endocrinology last week")
    with qtbot.waitSignal(banner.finished):
        qtbot.keyClick(banner.comment, Qt.Key.Key_Return)
    assert recorder.events == [(AlertEventType.DISMISSED, "other",
                                "seen by endocrinology last week")]


def test_keyboard_acknowledge_and_escape_snoozes(qtbot: Any) -> None:
    recorder = Recorder()
    banner = _banner(qtbot, recorder)
    banner.activateWindow()  # what Ctrl+Shift+B in the main window does
    qtbot.waitUntil(banner.isActiveWindow)
    banner.ack_button.setFocus()  # Tab order reaches every button
    with qtbot.waitSignal(banner.finished):
        qtbot.keyClick(banner.ack_button, Qt.Key.Key_Space)
    assert recorder.events == [(AlertEventType.ACKNOWLEDGED, "", "")]
    other = Recorder()
    second = _banner(qtbot, other)
    second.activateWindow()
    qtbot.waitUntil(second.isActiveWindow)
    with qtbot.waitSignal(second.finished):
        qtbot.keyClick(second, Qt.Key.Key_Escape)
    assert other.events == [(AlertEventType.SNOOZED, "", "")]


def test_painted_signal_carries_the_time_once_per_alert(qtbot: Any) -> None:
    banner = Banner(Recorder(), 60)
    qtbot.addWidget(banner)
    banner.present(make_alert())
    with qtbot.waitSignal(banner.painted) as blocker:
        banner.show()
    alert, when = blocker.args
    assert alert is banner.alert and when.tzinfo is not None
    painted: list[Alert] = []
    banner.painted.connect(lambda a, _: painted.append(a))
    banner.repaint()  # the same alert again: no second "painted"
    second = make_alert(alert_id="b0000000-0000-0000-0000-000000000000")
    banner.present(second)  # the same window, the next alert
    qtbot.waitUntil(lambda: painted == [second])
    banner.close()


def test_long_patient_line_wraps_and_the_banner_grows(qtbot: Any) -> None:
    banner = _banner(qtbot, Recorder())
    short = banner.height()
    long = make_alert(name="VON HOHENZOLLERN-SIGMARINGEN WETTIN-SACHSEN, Maria Theresia "
                           "Walburga Amalia Christina",
                      alert_id="c0000000-0000-0000-0000-000000000000")
    banner.present(long)
    assert banner.patient.wordWrap()
    assert banner.height() > short  # the wrapped line is given its height, not cut
    hint = banner.patient.heightForWidth(banner.patient.width())
    assert banner.patient.height() >= hint
    banner.close()
