"""Following the department's change journal: what a workstation does instead of
listening to the feed (`[department] role = "workstation"`).

The receiver writes a `patient_changes` row in the same transaction as each change it
processes (app/ingest/processor.py); on PostgreSQL a trigger then rings NOTIFY
`clarion_patient_changes` with no payload. The follower LISTENs on its own connection,
and on each ring (or every `poll_s` regardless, and on SQLite, which has no NOTIFY) reads
the journal after the last id it saw and hands each change to `on_change`, in order,
once. A lost connection is reopened with a growing pause, and the first read after it
takes up where the last one stopped: nothing committed is missed or handed over twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from app import logs
from app.ingest.processor import PatientChanged, from_journal
from app.store.models import PatientChangeRecord, table_of

CHANNEL = "clarion_patient_changes"  # migration 0007's trigger rings it
BATCH = 500
_CHANGES = table_of(PatientChangeRecord)


class JournalFollower:
    """Reads the change journal after `after_id` (default: its end when started)."""

    def __init__(self, engine: Engine, on_change: Callable[[PatientChanged], None], *,
                 after_id: int | None = None, poll_s: float = 1.0) -> None:
        self.engine = engine
        self.on_change = on_change
        self.last_id = after_id
        self.poll_s = poll_s
        self.backend_pid: int | None = None  # the LISTEN connection's server process
        self.reconnects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listens = engine.dialect.name == "postgresql"

    def start(self) -> None:
        if self.last_id is None:
            with self.engine.connect() as conn:
                self.last_id = int(conn.scalar(select(func.max(_CHANGES.c.id))) or 0)
        self._thread = threading.Thread(target=self._run, name="clarion-journal",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def read_new(self) -> int:
        """Hand over every change after the last one seen; returns how many."""
        handed = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(select(_CHANGES).where(_CHANGES.c.id > self.last_id)
                                    .order_by(_CHANGES.c.id).limit(BATCH)).all()
            for row in rows:
                self.last_id = row.id  # before the hand-over: a failing listener is not
                handed += 1            # handed the same change again and again
                try:
                    self.on_change(from_journal(row))
                except Exception:  # a listener's failure must not stop the follower
                    logs.ingest.exception("journal change %d: listener failed", row.id)
            if len(rows) < BATCH:
                return handed

    def _run(self) -> None:
        pause = 0.5
        while not self._stop.is_set():
            try:
                if self._listens:
                    self._follow_notifications()
                else:
                    self.read_new()
                    self._stop.wait(self.poll_s)
                pause = 0.5
            except (SQLAlchemyError, OSError, _PsycopgError) as exc:
                self.reconnects += 1
                logs.ingest.warning("change journal: connection lost (%s); again in %.1f s",
                                    logs.describe_error(exc), pause)
                self._stop.wait(pause)
                pause = min(pause * 2, 30.0)

    def _follow_notifications(self) -> None:
        import psycopg

        url = make_url(self.engine.url).set(drivername="postgresql")
        with psycopg.connect(url.render_as_string(hide_password=False),
                             autocommit=True) as listener:
            listener.execute(f"LISTEN {CHANNEL}")
            self.backend_pid = listener.info.backend_pid
            self.read_new()  # what was committed before LISTEN took effect, or while away
            while not self._stop.is_set():
                for _ in listener.notifies(timeout=self.poll_s, stop_after=1):
                    pass
                self.read_new()


def _psycopg_error() -> type[Exception]:
    try:
        import psycopg
    except ImportError:  # SQLite-only installs: no LISTEN, no psycopg errors to catch
        return OSError
    return psycopg.Error


_PsycopgError: Any = _psycopg_error()
