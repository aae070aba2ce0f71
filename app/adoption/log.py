"""The adoption log (no Qt): every alert decision and everything that became of the banner
afterwards — displayed, viewed, acknowledged, dismissed with a reason, snoozed, expired —
and, when a later result carries a recommended test, the closing of the loop
(screening_completed), appended to the `alert_events` table, which refuses UPDATE and
DELETE.
"""

from __future__ import annotations

import getpass
import json
import platform
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app import logs
from app.config import WorkstationConfig

YIELD_TO_BANNER_S = 0.03  # a decision to show is written this long after the hand-over


class AlertEventType(StrEnum):
    GENERATED = "generated"  # the policy decided to show it
    SUPPRESSED = "suppressed"  # the policy decided not to, with the reason
    DISPLAYED = "displayed"  # painted on screen
    VIEWED = "viewed"  # Details opened, or on screen for the dwell time with focus
    ACKNOWLEDGED = "acknowledged"
    DISMISSED = "dismissed"  # with a coded reason
    SNOOZED = "snoozed"
    EXPIRED = "expired"
    SCREENING_COMPLETED = "screening_completed"


class DismissReason(StrEnum):
    """Coded dismissal reasons (after CDS Hooks' overrideReasons)."""

    ALREADY_SCREENED = "already-screened"
    NOT_RELEVANT = "not-relevant"
    PATIENT_DECLINED = "patient-declined"
    OTHER = "other"


DISMISS_WORDS = {DismissReason.ALREADY_SCREENED: "Already screened",
                 DismissReason.NOT_RELEVANT: "Not relevant for this patient",
                 DismissReason.PATIENT_DECLINED: "Patient declined",
                 DismissReason.OTHER: "Other"}

# What became of an alert, in the words the worklist, the recent alerts and the patient's
# alert history use (one place, so the three never disagree).
_OUTCOME_WORDS = {
    AlertEventType.DISPLAYED: "shown",
    AlertEventType.VIEWED: "viewed",
    AlertEventType.ACKNOWLEDGED: "acknowledged",
    AlertEventType.DISMISSED: "dismissed",
    AlertEventType.SNOOZED: "snoozed",
    AlertEventType.EXPIRED: "expired",
}
UNSETTLED = ("shown", "viewed")  # words a later outcome replaces


def outcome_words(event: str, reason: str = "") -> str | None:
    """"dismissed: patient declined", "expired unseen", "viewed" ...; None if the event
    says nothing about what became of the alert."""
    try:
        kind = AlertEventType(event)
    except ValueError:
        return None
    words = _OUTCOME_WORDS.get(kind)
    if words is None:
        return None
    if kind is AlertEventType.DISMISSED and reason:
        try:
            return f"{words}: {DISMISS_WORDS[DismissReason(reason)].lower()}"
        except ValueError:
            return f"{words}: {reason}"
    if kind is AlertEventType.EXPIRED and reason:
        return f"{words} {reason}"
    return words



def identity(config: WorkstationConfig) -> tuple[str, str, str]:
    """(workstation, clinician, department) for the log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return (config.name or platform.node() or "workstation", config.clinician or user,
            config.department)


class AdoptionLog:
    """Appends alert events. Never updates or deletes (the database refuses both).

    `record` writes at once (the policy's decisions: the banner waits for them);
    `record_later` hands the write to the log's own writer thread, in order, so that what
    the clinician does on the GUI thread never waits for the database's write lock.
    """

    def __init__(self, engine: Engine, workstation: WorkstationConfig) -> None:
        from app.store.db import write_gate, writer

        self._engine = engine
        self._writer = writer(engine)
        self._gate = write_gate(engine)  # the inbox (ACK path) still goes first
        self.workstation, self.clinician, self.department = identity(workstation)
        self._later: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        # Shown alerts handed to the writer thread and not yet written (for the policy).
        self._unwritten: dict[str, tuple[int, str, datetime, float | None]] = {}

    def record_later(self, alert_id: str, event: AlertEventType, patient_id: int,
                     **fields: Any) -> None:
        """`record`, on the log's writer thread (events keep their order)."""
        self._put({"alert_id": alert_id, "event": event, "patient_id": patient_id, **fields})

    def _put(self, item: dict[str, Any]) -> None:
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_later, daemon=True,
                                                name="clarion-adoption-log")
                self._thread.start()
        self._later.put(item)

    def then(self, work: Callable[[], None]) -> None:
        """Run `work` on the log's thread after what is queued (the clinic's follow-up
        work, such as closing the loop, that no banner waits for)."""
        self._put({"call": work})

    def _write_later(self) -> None:
        while True:
            item = self._later.get()
            if item is None:
                self._later.task_done()
                return
            if "call" in item:
                try:
                    item["call"]()
                except Exception:  # said, never swallowed; the log's thread goes on
                    logs.alerts.exception("follow-up work on the adoption log's thread failed")
                finally:
                    self._later.task_done()
                continue
            if item["event"] is AlertEventType.GENERATED:
                # The banner is being painted right now, on the GUI thread, which shares
                # the interpreter with this one: write after it.
                time.sleep(YIELD_TO_BANNER_S)
            try:
                self.record(**item)
                if item["event"] is AlertEventType.GENERATED:
                    with self._thread_lock:
                        self._unwritten.pop(item["alert_id"], None)
            except Exception as exc:  # said, never swallowed; the next events still go
                logs.alerts.error("adoption event %s of alert %s not written: %s",
                                  item["event"], str(item["alert_id"])[:8],
                                  logs.describe_error(exc))
            finally:
                self._later.task_done()

    def flush(self) -> None:
        """Until every event handed to `record_later` is written."""
        self._later.join()

    def close(self) -> None:
        """Write what is waiting, then stop the writer thread."""
        with self._thread_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._later.put(None)
            thread.join(30)

    def record(self, alert_id: str, event: AlertEventType, patient_id: int, *,
               at: datetime, model: str = "", label: str = "", risk: float | None = None,
               tier: str = "", engine: str = "", reason: str = "", comment: str = "",
               detail: dict[str, Any] | None = None) -> None:
        """Append one event now."""
        from app.store.models import AlertEvent

        with self._gate.background(), Session(self._writer) as session, session.begin():
            session.add(AlertEvent(
                alert_id=alert_id, event=event.value, at=at, workstation=self.workstation,
                clinician=self.clinician, department=self.department, patient_id=patient_id,
                model=model, label=label, risk=risk, tier=tier, engine=engine, reason=reason,
                comment=comment, detail=json.dumps(detail or {}, sort_keys=True)))
        logs.alerts.info("alert %s %s%s", alert_id[:8], event.value,
                         f" ({reason})" if reason else "")

    def record_shown(self, alert_id: str, patient_id: int, *, at: datetime, model: str,
                     risk: float | None, **fields: Any) -> None:
        """The policy's decision to show an alert: written on the log's thread like the
        clinician's events (in order, before them), so the banner does not wait for the
        disk — and counted by `last_shown` and `shown_since` from the moment it is
        handed over, written or not."""
        with self._thread_lock:
            self._unwritten[alert_id] = (patient_id, model, at, risk)
        self.record_later(alert_id, AlertEventType.GENERATED, patient_id, at=at, model=model,
                          risk=risk, **fields)

    def last_shown(self, patient_id: int, model: str) -> tuple[datetime, float | None] | None:
        """When this model's last alert for the patient was shown, and at what risk."""
        with self._engine.connect() as conn:
            row = conn.execute(_LAST_SHOWN, {"patient": patient_id, "model": model}).first()
        found = [] if row is None else [(row[0], row[1])]
        with self._thread_lock:
            found += [(at, risk) for p, m, at, risk in self._unwritten.values()
                      if p == patient_id and m == model]
        return max(found, key=lambda f: f[0]) if found else None

    def shown_since(self, since: datetime) -> int:
        """Alerts shown to this clinician since `since` (the hourly limit)."""
        with self._thread_lock:
            unwritten = [alert_id for alert_id, (_, _, at, _) in self._unwritten.items()
                         if at >= since]
        with self._engine.connect() as conn:
            written = int(conn.scalar(_SHOWN_SINCE, {"clinician": self.clinician,
                                                     "since": since}) or 0)
            # An event written between the two reads would count twice: not these.
            if unwritten:
                written -= int(conn.scalar(_WRITTEN_AMONG, {"ids": unwritten}) or 0)
        return written + len(unwritten)

    def open_recommendations(self, patient_id: int, since: datetime) -> list[tuple[str, list[str]]]:
        """(alert id, recommended LOINC codes) of this patient's alerts not yet followed up."""
        from app.store.models import AlertEvent

        with Session(self._engine) as session:
            rows = session.execute(select(AlertEvent.alert_id, AlertEvent.event,
                                          AlertEvent.detail).where(
                AlertEvent.patient_id == patient_id, AlertEvent.at >= since,
                AlertEvent.event.in_([AlertEventType.GENERATED.value,
                                      AlertEventType.SCREENING_COMPLETED.value]))).all()
        done = {r.alert_id for r in rows if r.event == AlertEventType.SCREENING_COMPLETED.value}
        out = []
        for r in rows:
            if r.event == AlertEventType.GENERATED.value and r.alert_id not in done:
                out.append((r.alert_id, json.loads(r.detail).get("screening_loinc", [])))
        return out


def _statements() -> tuple[Any, Any, Any]:
    # Built once (the policy runs them for every alert): Core, not a Session per query.
    from sqlalchemy import bindparam

    from app.store.models import AlertEvent, table_of

    e = table_of(AlertEvent).c
    last = (select(e.at, e.risk).where(e.patient_id == bindparam("patient"),
                                       e.model == bindparam("model"),
                                       e.event == AlertEventType.GENERATED.value)
            .order_by(e.at.desc()).limit(1))
    count = select(func.count()).select_from(table_of(AlertEvent)).where(
        e.clinician == bindparam("clinician"), e.event == AlertEventType.GENERATED.value,
        e.at >= bindparam("since"))
    among = select(func.count()).select_from(table_of(AlertEvent)).where(
        e.event == AlertEventType.GENERATED.value,
        e.alert_id.in_(bindparam("ids", expanding=True)))
    return last, count, among


_LAST_SHOWN, _SHOWN_SINCE, _WRITTEN_AMONG = _statements()
