"""The durable inbox: a message is ACKed only after its raw bytes are committed here.

One writer thread owns all inbox inserts (single-writer, as SQLite wants). It takes every
message waiting at that moment and commits them in one transaction ("group commit"), so
eight busy connections cost one fsync per batch instead of one per message, and no
message waits for more than one commit in progress.

A resend — same sending application, facility, MSH-10 and the same bytes — is not stored
again: it gets the answer the original got. A reused MSH-10 with different content is a
different message and is stored (senders do reuse control IDs; losing a result would be
worse than keeping a duplicate).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import logs
from app.store.db import write_gate, writer
from app.store.models import InboxMessage, InboxStatus, utcnow
from integrations.hl7.acks import AckError, Outcome, ack_code
from integrations.hl7.receipt import Assessment

MAX_BATCH = 512


@dataclass(frozen=True, slots=True)
class Receipt:
    """The inbox's answer for one message: stored (or recognised as a resend)."""

    message_id: int
    status: InboxStatus
    outcome: Outcome
    errors: tuple[AckError, ...]
    duplicate: bool
    received_at: datetime


@dataclass(slots=True)
class _Pending:
    raw: bytes
    peer: str
    assessment: Assessment
    key: tuple[str, str, str, str]
    future: Future[Receipt]
    received_at: datetime


class InboxClosed(RuntimeError):
    """The inbox is shutting down; the message was not stored and must not be ACKed."""


def _status_for(assessment: Assessment) -> InboxStatus:
    if assessment.outcome is not Outcome.ACCEPT:
        return InboxStatus.REJECTED
    return InboxStatus.RECEIVED if assessment.used else InboxStatus.IGNORED


def _receipt_of(row: InboxMessage, duplicate: bool) -> Receipt:
    outcome = {"AA": Outcome.ACCEPT, "CA": Outcome.ACCEPT, "AE": Outcome.ERROR,
               "CE": Outcome.ERROR}.get(row.ack_code, Outcome.REJECT)
    errors = ()
    if row.ack_error_code:
        errors = (AckError(row.ack_error_code, row.ack_error_text,
                           location=row.ack_error_location),)
    return Receipt(row.id, InboxStatus(row.status), outcome, errors, duplicate, row.received_at)


class DurableInbox:
    """Group-committing writer of received messages. Thread-safe `submit`."""

    def __init__(self, engine: Engine,
                 on_committed: Callable[[list[int]], None] | None = None) -> None:
        self._engine = writer(engine)
        self._gate = write_gate(engine)
        self._on_committed = on_committed
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="clarion-inbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Commit what was submitted, then stop. Later submits fail with `InboxClosed`."""
        self._closed.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, raw: bytes, peer: str, assessment: Assessment,
               received_at: datetime | None = None) -> Future[Receipt]:
        """Queue a message for the next commit; the future resolves once it is durable."""
        future: Future[Receipt] = Future()
        if self._closed.is_set():
            future.set_exception(InboxClosed("the inbox is closed"))
            return future
        header = assessment.header
        key = (header.sending_application if header else "",
               header.sending_facility if header else "",
               assessment.control_id,
               hashlib.sha256(raw).hexdigest())
        self._queue.put(_Pending(raw, peer, assessment, key, future, received_at or utcnow()))
        return future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            stop_after = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop_after = True
                    break
                batch.append(item)
            self._commit_batch(batch)
            if stop_after:
                break
        # Anything that raced in after stop() is refused, never left hanging.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item.future.set_exception(InboxClosed("the inbox is closed"))

    def _commit_batch(self, batch: list[_Pending]) -> None:
        for attempt in (1, 2):
            try:
                with self._gate.urgent():
                    receipts = self._write(batch)
                break
            except IntegrityError:
                # Another process stored one of these keys first; the re-read finds it.
                if attempt == 2:
                    raise
            except Exception as exc:  # a failed commit must reach every waiting sender
                logs.inbox.error("inbox commit of %d message(s) failed: %s", len(batch),
                                 logs.describe_error(exc))
                for item in batch:
                    item.future.set_exception(exc)
                return
        for item, receipt in zip(batch, receipts, strict=True):
            item.future.set_result(receipt)
        fresh = [r.message_id for r in receipts
                 if not r.duplicate and r.status is InboxStatus.RECEIVED]
        if fresh and self._on_committed is not None:
            self._on_committed(fresh)

    def _write(self, batch: list[_Pending]) -> list[Receipt]:
        now = utcnow()
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            hashes = {item.key[3] for item in batch}
            existing: dict[tuple[str, str, str, str], InboxMessage] = {}
            for row in session.scalars(
                    select(InboxMessage).where(InboxMessage.content_hash.in_(hashes))):
                key = (row.sending_application, row.sending_facility, row.control_id,
                       row.content_hash)
                existing[key] = row
            rows: list[tuple[InboxMessage, bool]] = []
            for item in batch:
                row = existing.get(item.key)
                if row is not None:
                    row.duplicate_count += 1
                    row.last_duplicate_at = now
                    rows.append((row, True))
                    continue
                assessment = item.assessment
                header = assessment.header
                error = assessment.errors[0] if assessment.errors else None
                enhanced = bool(header and header.enhanced_mode)
                code = ack_code(assessment.outcome, enhanced)
                row = InboxMessage(
                    received_at=item.received_at, peer=item.peer[:64],
                    sending_application=item.key[0][:227], sending_facility=item.key[1][:227],
                    control_id=item.key[2][:199], content_hash=item.key[3],
                    message_type=header.message_type[:16] if header else "",
                    trigger=header.trigger[:16] if header else "",
                    version=header.version[:16] if header else "",
                    charset=header.charset if header else "",
                    raw=item.raw, status=_status_for(assessment).value, ack_code=code,
                    ack_error_code=error.code if error else "",
                    ack_error_text=error.text if error else "",
                    ack_error_location=error.location if error else "",
                    attempts=0, last_error="", patient_key="", duplicate_count=0)
                session.add(row)
                existing[item.key] = row
                rows.append((row, False))
            session.flush()
            receipts = [_receipt_of(row, dup) for row, dup in rows]
        for receipt, item in zip(receipts, batch, strict=True):
            if receipt.duplicate:
                logs.inbox.info("resend of control id %r from %s: answered as before (%s)",
                                item.assessment.control_id, item.peer, receipt.status.value)
        return receipts
