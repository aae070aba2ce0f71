"""One banner at a time: alerts wait behind the one on screen.

New alerts never cover the one a doctor may be reading; they wait, highest tier first and
newest first within a tier, and the banner says how many more wait, with previous/next.
When the doctor is done with the one on screen, the best waiting one takes its place.

Every alert has `expire_after_s` on screen once shown; one that waits that long without
ever being shown is logged as expired with the reason "unseen" — never as viewed — and
one that was shown and left untouched as plainly expired.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from app.adoption.log import AlertEventType
from app.clinic.alerts import Alert
from ui.banner import Banner, Recorder
from ui.qt import QObject, QTimer, Signal

TIER_RANK = {"high": 3, "elevated": 2, "low": 1}


@dataclass
class Waiting:
    """An alert in the queue."""

    alert: Alert
    deadline: float  # monotonic: expires then
    shown: bool = False


class BannerQueue(QObject):
    """Owns the banner window and the alerts waiting for it."""

    #: The queue changed: alerts added, finished or expired (the main window lists them).
    changed = Signal()

    SWEEP_MS = 500

    def __init__(self, banner: Banner, record: Recorder, expire_after_s: float,
                 place: Callable[[Banner], None] | None = None) -> None:
        super().__init__(banner)
        self.banner = banner
        self._record = record
        self._expire_after_s = expire_after_s
        self._place = place
        self.waiting: list[Waiting] = []  # in showing order
        self._current: Waiting | None = None
        banner.finished.connect(self._finished)
        banner.step.connect(self.step)
        self._sweep = QTimer(self, interval=self.SWEEP_MS)
        self._sweep.timeout.connect(self.expire_due)

    @property
    def current(self) -> Alert | None:
        return self._current.alert if self._current is not None else None

    def __len__(self) -> int:
        return len(self.waiting)

    @staticmethod
    def _order(item: Waiting) -> tuple[int, float]:
        return (-TIER_RANK.get(item.alert.tier, 0), -item.alert.generated_at.timestamp())

    def add(self, alert: Alert) -> None:
        """Queue an alert; show it at once if nothing is on screen."""
        self.waiting.append(Waiting(alert, time.monotonic() + self._expire_after_s))
        self.waiting.sort(key=self._order)
        if self._current is None:
            self._show(self.waiting[0])
        else:
            self.banner.set_queue(self.waiting.index(self._current), len(self.waiting))
        if not self._sweep.isActive():
            self._sweep.start()
        self.changed.emit()

    def step(self, delta: int) -> None:
        """Previous (-1) or next (+1) waiting alert."""
        if self._current is None:
            return
        position = self.waiting.index(self._current) + delta
        if 0 <= position < len(self.waiting):
            self._show(self.waiting[position])

    def _show(self, item: Waiting) -> None:
        self._current = item
        if not item.shown:
            item.shown = True
            item.deadline = time.monotonic() + self._expire_after_s  # its full time on screen
        self.banner.present(item.alert, self.waiting.index(item), len(self.waiting))
        if not self.banner.isVisible():
            if self._place is not None:
                self._place(self.banner)
            self.banner.show()
        elif self._place is not None:
            self._place(self.banner)

    def _next(self) -> None:
        if self.waiting:
            self._show(self.waiting[0])
        else:
            self._current = None
            self.banner.hide()
            self._sweep.stop()
        self.changed.emit()

    def _finished(self, alert: Alert) -> None:
        """The clinician acted on the alert on screen (the banner logged what)."""
        self.waiting = [w for w in self.waiting if w.alert.alert_id != alert.alert_id]
        self._current = None
        self._next()

    def expire_due(self, now: float | None = None) -> None:
        """Log and drop every alert past its time; show the next if the current went."""
        now = time.monotonic() if now is None else now
        due = [w for w in self.waiting if w.deadline <= now]
        if not due:
            return
        for item in due:
            self._record(item.alert, AlertEventType.EXPIRED, "" if item.shown else "unseen",
                         "", {})
        self.waiting = [w for w in self.waiting if w.deadline > now]
        if self._current in due:
            self._current = None
            self.banner.alert = None
            self._next()
        else:
            if self._current is not None:
                self.banner.set_queue(self.waiting.index(self._current), len(self.waiting))
            self.changed.emit()

    def clear(self) -> None:
        """Closing down: nothing more is shown (nothing is logged for the waiting ones)."""
        self.waiting = []
        self._current = None
        self._sweep.stop()
        self.banner.alert = None
        self.banner.hide()
