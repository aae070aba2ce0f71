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

import asyncio
import contextlib
import hashlib
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app import logs
from app.store.db import write_gate, writer
from app.store.models import InboxMessage, InboxStatus, table_of, utcnow
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
    future: Future[Receipt] | None  # for a thread that waits (submit)
    received_at: datetime
    waiter: asyncio.Future[Receipt] | None = None  # for a coroutine (submit_async)
    patient_key: str = ""  # pseudonym of the first patient, read at receipt
    lane: str = ""  # "fast": handed to the fast lane once stored


class InboxClosed(RuntimeError):
    """The inbox is shutting down; the message was not stored and must not be ACKed."""


def _status_for(assessment: Assessment) -> InboxStatus:
    if assessment.outcome is not Outcome.ACCEPT:
        return InboxStatus.REJECTED
    return InboxStatus.RECEIVED if assessment.used else InboxStatus.IGNORED


_INBOX = table_of(InboxMessage)
_KNOWN = (_INBOX.c.id, _INBOX.c.sending_application, _INBOX.c.sending_facility,
          _INBOX.c.control_id, _INBOX.c.content_hash, _INBOX.c.status, _INBOX.c.ack_code,
          _INBOX.c.ack_error_code, _INBOX.c.ack_error_text, _INBOX.c.ack_error_location,
          _INBOX.c.received_at)
_KEY_COLUMNS = ("sending_application", "sending_facility", "control_id", "content_hash")


def _receipt_of(message_id: int, row: Mapping[str, Any], duplicate: bool) -> Receipt:
    """The answer stored with a message (`row`: its inbox columns)."""
    outcome = {"AA": Outcome.ACCEPT, "CA": Outcome.ACCEPT, "AE": Outcome.ERROR,
               "CE": Outcome.ERROR}.get(row["ack_code"], Outcome.REJECT)
    errors: tuple[AckError, ...] = ()
    if row["ack_error_code"]:
        errors = (AckError(row["ack_error_code"], row["ack_error_text"],
                           location=row["ack_error_location"]),)
    return Receipt(message_id, InboxStatus(row["status"]), outcome, errors, duplicate,
                   row["received_at"])


def _new_row(item: _Pending) -> dict[str, Any]:
    assessment = item.assessment
    header = assessment.header
    error = assessment.errors[0] if assessment.errors else None
    return {
        "received_at": item.received_at, "peer": item.peer[:64],
        "sending_application": item.key[0][:227], "sending_facility": item.key[1][:227],
        "control_id": item.key[2][:199], "content_hash": item.key[3],
        "message_type": header.message_type[:16] if header else "",
        "trigger": header.trigger[:16] if header else "",
        "version": header.version[:16] if header else "",
        "charset": header.charset if header else "", "raw": item.raw,
        "status": _status_for(assessment).value,
        "ack_code": ack_code(assessment.outcome, bool(header and header.enhanced_mode)),
        "ack_error_code": error.code if error else "",
        "ack_error_text": error.text if error else "",
        "ack_error_location": error.location if error else "",
        "attempts": 0, "last_error": "", "patient_key": item.patient_key[:32],
        "shard": shard_of(item.patient_key), "lane": item.lane, "duplicate_count": 0}


SHARDS = 16


def shard_of(patient_key: str) -> int:
    """The inbox shard of a patient key (`logs.pseudonym`, hexadecimal): its last digit;
    0 for a message whose patient could not be read at receipt."""
    try:
        return int(patient_key[-1], 16) if patient_key else 0
    except ValueError:
        return sum(patient_key.encode()) % SHARDS


def _settle(pairs: list[tuple[asyncio.Future[Receipt], Receipt | BaseException]]) -> None:
    for waiter, result in pairs:
        if waiter.done():  # the connection went away meanwhile
            continue
        if isinstance(result, BaseException):
            waiter.set_exception(result)
        else:
            waiter.set_result(result)


def _deliver(batch: list[_Pending], results: Sequence[Receipt | BaseException]) -> None:
    """Hand each waiting sender its receipt (or the error that kept it from being stored)."""
    by_loop: dict[asyncio.AbstractEventLoop,
                  list[tuple[asyncio.Future[Receipt], Receipt | BaseException]]] = {}
    for item, result in zip(batch, results, strict=True):
        if item.waiter is not None:
            by_loop.setdefault(item.waiter.get_loop(), []).append((item.waiter, result))
        elif item.future is not None:
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, pairs)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


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
        self._conn: Connection | None = None  # the writer thread's, held between batches
        self._insert: _Insert | None = None

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
               received_at: datetime | None = None, patient_key: str = "",
               lane: str = "") -> Future[Receipt]:
        """Queue a message for the next commit; the future resolves once it is durable."""
        future: Future[Receipt] = Future()
        if self._closed.is_set():
            future.set_exception(InboxClosed("the inbox is closed"))
            return future
        self._queue.put(_Pending(raw, peer, assessment, self._key(raw, assessment), future,
                                 received_at or utcnow(), None, patient_key, lane))
        return future

    def submit_async(self, raw: bytes, peer: str, assessment: Assessment,
                     received_at: datetime | None = None, patient_key: str = "",
                     lane: str = "") -> asyncio.Future[Receipt]:
        """`submit` for the event loop: an asyncio future, resolved together with the rest
        of its batch (one wake-up of the loop per commit, not one per message)."""
        waiter: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        if self._closed.is_set():
            waiter.set_exception(InboxClosed("the inbox is closed"))
            return waiter
        self._queue.put(_Pending(raw, peer, assessment, self._key(raw, assessment), None,
                                 received_at or utcnow(), waiter, patient_key, lane))
        return waiter

    @staticmethod
    def _key(raw: bytes, assessment: Assessment) -> tuple[str, str, str, str]:
        header = assessment.header
        return (header.sending_application if header else "",
                header.sending_facility if header else "", assessment.control_id,
                hashlib.sha256(raw).hexdigest())

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
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        # Anything that raced in after stop() is refused, never left hanging.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                _deliver([item], [InboxClosed("the inbox is closed")])

    def _commit_batch(self, batch: list[_Pending]) -> None:
        try:
            with self._gate.urgent():
                receipts = self._write(batch)
        except Exception as exc:  # a failed commit must reach every waiting sender
            logs.inbox.error("inbox commit of %d message(s) failed: %s", len(batch),
                             logs.describe_error(exc))
            self._drop_connection()
            _deliver(batch, [exc] * len(batch))
            return
        _deliver(batch, receipts)
        fresh = [r.message_id for r in receipts
                 if not r.duplicate and r.status is InboxStatus.RECEIVED]
        if fresh and self._on_committed is not None:
            self._on_committed(fresh)

    def _connection(self) -> Connection:
        """The writer's connection, held from batch to batch: taking one from the pool and
        resetting it on return cost more than the insert it was for."""
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        """After a failure: the next batch starts on a fresh connection (the server may have
        restarted, or the connection may be mid-way through a failed transaction)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    def _write(self, batch: list[_Pending]) -> list[Receipt]:
        """One transaction: insert each message unless its key is stored already (ON
        CONFLICT DO NOTHING), read what a resend was answered, count the resends.

        The inserts go through the driver's cursor with a statement compiled once: this
        runs for every batch on the ACK path, where SQLAlchemy's per-statement work was
        most of the receiver's time. A resend within the batch conflicts with the row
        inserted for its first copy, so it is answered as that one."""
        rows = [_new_row(item) for item in batch]
        if self._insert is None:
            self._insert = _Insert(self._engine.dialect, tuple(rows[0]))
        conn = self._connection()
        with conn.begin():
            ids = self._insert.run(conn.connection.dbapi_connection, rows)
            receipts, resent = [], []
            for values, message_id in zip(rows, ids, strict=True):
                if message_id is not None:
                    receipts.append(_receipt_of(message_id, values, False))
                    continue
                stored = conn.execute(select(*_KNOWN).where(
                    *(_INBOX.c[name] == values[name] for name in _KEY_COLUMNS))).one()
                receipts.append(_receipt_of(stored.id, dict(stored._mapping), True))
                resent.append({"resent_id": stored.id})
            if resent:
                conn.execute(update(_INBOX).where(_INBOX.c.id == bindparam("resent_id")).values(
                    duplicate_count=_INBOX.c.duplicate_count + 1, last_duplicate_at=utcnow()),
                    resent)
        for receipt, item in zip(receipts, batch, strict=True):
            if receipt.duplicate:
                logs.inbox.info("resend of control id %r from %s: answered as before (%s)",
                                item.assessment.control_id, item.peer, receipt.status.value)
        return receipts


class _Insert:
    """The inbox's INSERT ... ON CONFLICT DO NOTHING RETURNING id, compiled once for the
    store's dialect and run on the driver's cursor (SQLite in this process: one execute
    a row; PostgreSQL: the rows pipelined in one round trip)."""

    def __init__(self, dialect: Dialect, columns: tuple[str, ...]) -> None:
        if dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"the inbox supports SQLite and PostgreSQL, not {dialect.name}")
        module = postgresql if dialect.name == "postgresql" else sqlite
        statement = module.insert(_INBOX).on_conflict_do_nothing(
            index_elements=[_INBOX.c[name] for name in _KEY_COLUMNS]).returning(_INBOX.c.id)
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        self._sql = compiled.string
        self._order = compiled.positiontup  # None for a driver that takes named parameters
        self._pipelined = dialect.name == "postgresql"
        # The columns' own conversions (UTCDateTime to naive UTC, then the driver's form).
        self._convert = [(name, process) for name in columns
                         if (process := _INBOX.c[name].type.bind_processor(dialect))]

    def _parameters(self, row: dict[str, Any]) -> Any:
        bound = dict(row)
        for name, process in self._convert:
            bound[name] = process(bound[name])
        return bound if self._order is None else tuple(bound[name] for name in self._order)

    def run(self, dbapi_connection: Any, rows: list[dict[str, Any]]) -> list[int | None]:
        """Each row's new id, or None where its key was stored already."""
        params = [self._parameters(row) for row in rows]
        cursor = dbapi_connection.cursor()
        try:
            if self._pipelined:
                cursor.executemany(self._sql, params, returning=True)
                ids: list[int | None] = []
                while True:
                    found = cursor.fetchone()
                    ids.append(found[0] if found else None)
                    if not cursor.nextset():
                        return ids
            ids = []
            for one in params:
                cursor.execute(self._sql, one)
                found = cursor.fetchone()
                ids.append(found[0] if found else None)
            return ids
        finally:
            cursor.close()
