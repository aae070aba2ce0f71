"""Processing the inbox into the patient store.

Receipt and processing are separate: the listener only commits raw bytes and ACKs; this
worker parses what was received, in receive order, and applies it. Each message is applied
inside its own savepoint, so one bad message never undoes or blocks its neighbours:

- a message whose content cannot be used (`MessageContentError`) is quarantined at once,
  since trying again cannot change the answer;
- any other failure (a locked or unreachable database, a bug) is retried with backoff and
  quarantined after `ingest.max_attempts`; while it waits, later messages of the same
  patient wait too (order per patient), and everyone else's go ahead.

After a restart, whatever is still `received` is simply processed: nothing is lost between
the ACK and the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app import logs
from app.config import IngestConfig
from app.store.db import write_gate, writer
from app.store.models import InboxMessage, InboxStatus, utcnow
from app.store.patients import apply_parsed
from integrations.hl7.events import MessageContentError
from integrations.hl7.header import HeaderError, read_header
from integrations.hl7.parse import parse_message

BATCH_BUDGET_S = 0.025  # hold the write lock briefly: the inbox writer is waiting behind us
POLL_S = 1.0


@dataclass(frozen=True, slots=True)
class PatientChanged:
    """A processed message changed a patient's record (the open-patient hook)."""

    patient_id: int
    message_id: int
    message_type: str
    trigger: str
    loincs: tuple[str, ...]  # LOINC codes of the results it brought
    received_at: datetime  # the frame's arrival
    processed_at: datetime
    location: str = ""  # PV1-3 point of care (ADT), for routing to a workstation
    providers: tuple[str, ...] = ()  # PV1-7 attending, PV1-17 admitting


def feed_timezone(name: str) -> tzinfo:
    """The zone for HL7 times sent without an offset."""
    if name == "local":
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    return ZoneInfo(name)


class Processor:
    """Applies received messages to the store, on its own thread or on demand."""

    def __init__(self, engine: Engine, config: IngestConfig | None = None,
                 on_change: Callable[[PatientChanged], None] | None = None) -> None:
        self._reader = engine
        self._engine = writer(engine)
        self._gate = write_gate(engine)
        self._config = config or IngestConfig()
        self._tz = feed_timezone(self._config.feed_timezone)
        self._on_change = on_change
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self, _ids: object = None) -> None:
        """Something was received: process it now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="clarion-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the message in hand and stop; the store is left consistent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.process_pending()
            except Exception as exc:  # the loop must survive a database outage and try again
                logs.ingest.error("inbox processing pass failed (%s); retrying",
                                  logs.describe_error(exc))
                busy = 0
            if not busy:
                self._wake.wait(POLL_S)
                self._wake.clear()

    def process_pending(self, limit: int = 1000) -> int:
        """One pass over the received messages that are due. Returns how many it handled."""
        now = utcnow()
        with Session(self._reader) as session:
            due = session.execute(
                select(InboxMessage.id, InboxMessage.patient_key, InboxMessage.next_attempt_at)
                .where(InboxMessage.status == InboxStatus.RECEIVED.value)
                .order_by(InboxMessage.id).limit(limit)).all()
        waiting: set[str] = set()  # patients with an earlier message waiting for a retry
        todo: list[int] = []
        for message_id, key, next_at in due:
            if next_at is not None and next_at > now:
                if key:
                    waiting.add(key)
                continue
            if key and key in waiting:
                continue
            todo.append(message_id)
        handled = 0
        while todo and not self._stop.is_set():
            handled += self._process_batch(todo, waiting)
        return handled

    def _process_batch(self, todo: list[int], waiting: set[str]) -> int:
        changes: list[PatientChanged] = []
        handled = 0
        started = time.perf_counter()
        with self._gate.background(), Session(self._engine, expire_on_commit=False) as session, \
                session.begin():
            while (todo and time.perf_counter() - started < BATCH_BUDGET_S
                   and not (handled and self._gate.urgent_waiting())):
                message_id = todo.pop(0)
                row = session.get(InboxMessage, message_id)
                if row is None or row.status != InboxStatus.RECEIVED.value:
                    continue
                if row.patient_key and row.patient_key in waiting:
                    continue
                handled += 1
                changes += self._process_one(session, row, waiting)
        for change in changes:
            if self._on_change is not None:
                try:
                    self._on_change(change)
                except Exception:  # a listener's failure must not undo the ingest
                    logs.ingest.exception("patient-changed callback failed")
        return handled

    def _process_one(self, session: Session, row: InboxMessage,
                     waiting: set[str]) -> list[PatientChanged]:
        now = utcnow()
        try:
            header = read_header(row.raw)
            parsed = parse_message(header.text, header.message_type, header.trigger, self._tz)
        except MessageContentError as exc:
            self._fail(row, f"content error ({exc.location or 'message'}): {exc}", now,
                       final=True)
            return []
        except HeaderError as exc:  # readable at receipt, so only a changed parser gets here
            self._fail(row, f"header error: {exc}", now, final=True)
            return []
        first = parsed[0].patient.identifiers[0]
        row.patient_key = logs.pseudonym(first.value, first.authority)
        if row.patient_key in waiting:
            return []  # an earlier message of this patient waits for a retry: keep order
        try:
            with session.begin_nested():
                patient_ids = apply_parsed(session, row.id, parsed)
        except Exception as exc:  # anything else may be transient: retry, then quarantine
            self._fail(row, logs.describe_error(exc), now, final=False)
            if row.status == InboxStatus.RECEIVED.value:
                waiting.add(row.patient_key)
            return []
        row.status = InboxStatus.PROCESSED.value
        row.processed_at = now
        row.attempts += 1
        row.next_attempt_at = None
        loincs = tuple(sorted({o.loinc for p in parsed for o in p.observations if o.loinc}))
        logs.ingest.debug("processed %s^%s control id %r for %s", row.message_type,
                          row.trigger, row.control_id, row.patient_key)
        changes = []
        for pid, item in zip(patient_ids, parsed, strict=True):
            visit = item.visit
            changes.append(PatientChanged(
                pid, row.id, row.message_type, row.trigger, loincs, row.received_at, now,
                location=visit.location if visit else "",
                providers=tuple(p for p in (visit.attending, visit.admitting) if p)
                if visit else ()))
        return changes

    def _fail(self, row: InboxMessage, error: str, now: datetime, *, final: bool) -> None:
        row.attempts += 1
        row.last_error = error[:4000]
        if final or row.attempts >= self._config.max_attempts:
            row.status = InboxStatus.FAILED.value
            row.next_attempt_at = None
            logs.ingest.error("quarantined message %d (control id %r) after %d attempt(s): %s",
                              row.id, row.control_id, row.attempts, error)
        else:
            delay = self._config.retry_backoff_s * 2 ** (row.attempts - 1)
            row.next_attempt_at = now + timedelta(seconds=delay)
            logs.ingest.warning("message %d (control id %r) failed attempt %d, retry in "
                                "%.1f s: %s", row.id, row.control_id, row.attempts, delay,
                                error)
