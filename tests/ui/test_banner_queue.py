"""One banner at a time: alerts queue behind the one on screen, highest tier and newest
first; previous/next; a queued alert that expires unseen is logged so, never as viewed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from app.adoption.log import AlertEventType, DismissReason
from tests.ui.test_banner import Recorder, make_alert
from ui.banner import Banner
from ui.banner_queue import BannerQueue
from ui.qt import QApplication


def _queue(qtbot: Any, recorder: Recorder, expire: float = 60) -> BannerQueue:
    banner = Banner(recorder, dwell_view_s=60)
    qtbot.addWidget(banner)
    return BannerQueue(banner, recorder, expire)


def _alert(n: int, tier: str, minutes_ago: float) -> Any:
    return make_alert(tier=tier, name=f"PATIENT{n}, Test",
                      alert_id=f"{n:08d}-0000-0000-0000-000000000000",
                      at=datetime.now(UTC) - timedelta(minutes=minutes_ago))


def test_one_banner_at_a_time_and_the_rest_wait_in_order(qtbot: Any) -> None:
    recorder = Recorder()
    queue = _queue(qtbot, recorder)
    first = _alert(1, "elevated", 5)
    queue.add(first)
    qtbot.waitExposed(queue.banner)
    queue.add(_alert(2, "elevated", 1))  # newer, same tier
    queue.add(_alert(3, "high", 10))  # higher tier, older
    # The one on screen stays: a new alert never covers what the doctor is reading.
    assert queue.banner.alert is first and queue.current is first
    assert [w.alert.patient_name for w in queue.waiting] == [
        "PATIENT3, Test", "PATIENT2, Test", "PATIENT1, Test"]
    assert "2 more" in queue.banner.queue_label.text()
    assert queue.banner.next_button.isVisible() and queue.banner.previous_button.isVisible()
    top_levels = [w for w in QApplication.topLevelWidgets()
                  if w.isVisible() and isinstance(w, Banner)]
    assert top_levels == [queue.banner]  # nothing overlaps: there is one window
    queue.banner.acknowledge()
    # Done with it: the best waiting one (high tier) takes its place in the same window.
    assert queue.current.patient_name == "PATIENT3, Test"
    assert queue.banner.isVisible() and "1 more" in queue.banner.queue_label.text()
    queue.banner.step.emit(1)  # next
    assert queue.current.patient_name == "PATIENT2, Test"
    assert not queue.banner.next_button.isEnabled()
    queue.banner.step.emit(-1)  # previous
    assert queue.current.patient_name == "PATIENT3, Test"
    queue.banner.snooze()
    queue.banner.dismiss(DismissReason.NOT_RELEVANT)
    assert len(queue) == 0 and not queue.banner.isVisible()
    assert [e for e, _, _ in recorder.events] == [
        AlertEventType.ACKNOWLEDGED, AlertEventType.SNOOZED, AlertEventType.DISMISSED]


def test_a_queued_alert_expires_unseen_and_the_shown_one_expires(qtbot: Any) -> None:
    recorder = Recorder()
    logged: list[tuple[str, AlertEventType, str]] = []
    queue = _queue(qtbot, lambda a, e, r, c, d: logged.append((a.patient_name, e, r)),  # type: ignore[arg-type]
                   expire=0.3)
    queue.add(_alert(1, "high", 0))
    qtbot.waitExposed(queue.banner)
    queue.add(_alert(2, "elevated", 0))
    qtbot.waitUntil(lambda: len(logged) >= 2, timeout=5000)
    assert ("PATIENT2, Test", AlertEventType.EXPIRED, "unseen") in logged  # never on screen
    assert ("PATIENT1, Test", AlertEventType.EXPIRED, "") in logged
    assert not any(e is AlertEventType.VIEWED for _, e, _ in logged)
    qtbot.waitUntil(lambda: not queue.banner.isVisible(), timeout=3000)
    assert recorder.events == []


def test_an_alert_shown_late_gets_its_full_time_on_screen(qtbot: Any) -> None:
    logged: list[tuple[str, AlertEventType, str]] = []
    queue = _queue(qtbot, lambda a, e, r, c, d: logged.append((a.patient_name, e, r)),  # type: ignore[arg-type]
                   expire=60)
    queue.add(_alert(1, "high", 0))
    queue.add(_alert(2, "elevated", 0))
    queue.banner.acknowledge()
    shown_at = time.monotonic()
    [waiting] = queue.waiting
    assert waiting.shown and waiting.deadline >= shown_at + 59
    queue.expire_due(shown_at + 30)  # half its time: still there
    assert queue.current is waiting.alert
    queue.expire_due(shown_at + 61)
    assert logged[-1] == ("PATIENT2, Test", AlertEventType.EXPIRED, "")
    assert not queue.banner.isVisible()
