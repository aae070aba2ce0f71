"""The firing-anomaly check on a schedule, for the app and the headless receiver.

Wright et al. found most decision-support malfunctions were caught late, by users: a
feed that stopped or a model that went quiet should be named the morning after, not
when an admin next opens the dashboard. The watch checks the last whole days shortly
after start and again after each midnight (UTC, as the log's days are), on its own
thread, reading the log only. Each anomaly is logged as a warning (dates and counts, no
patient data) and handed to the listeners (the app shows it to admins).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app import logs
from app.adoption import anomaly
from app.adoption.anomaly import Anomaly

START_DELAY_S = 60.0  # let the app and the feed settle first
AFTER_MIDNIGHT_S = 600.0  # the day's last events are in by then


class AnomalyWatch:
    """Runs `anomaly.check` over the last `days` whole days at start and daily."""

    def __init__(self, engine: Engine, days: int = 1, start_delay_s: float = START_DELAY_S,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.engine = engine
        self.days = days
        self.start_delay_s = start_delay_s
        self.clock = clock
        self.on_found: list[Callable[[list[Anomaly]], None]] = []
        self.latest: list[Anomaly] = []
        self.checked_through: date | None = None  # the last day checked
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="clarion-anomaly-watch",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def check_now(self) -> list[Anomaly]:
        """Check the last whole days; log, remember and hand over what is found. A
        database that cannot be read is logged and tried again at the next run."""
        today = self.clock().date()
        try:
            found = anomaly.check(self.engine, days=self.days, today=today)
        except SQLAlchemyError as exc:
            logs.alerts.warning("firing-anomaly check could not read the log: %s",
                                type(exc).__name__)
            return []
        self.latest = found
        self.checked_through = today - timedelta(days=1)
        for listener in self.on_found:
            listener(found)
        return found

    def seconds_to_next(self) -> float:
        """Until the first run after the next midnight (UTC)."""
        now = self.clock()
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(),
                                    tzinfo=UTC)
        return (midnight - now).total_seconds() + AFTER_MIDNIGHT_S

    def _run(self) -> None:
        if self._stop.wait(self.start_delay_s):
            return
        while not self._stop.is_set():
            self.check_now()
            if self._stop.wait(self.seconds_to_next()):
                return
