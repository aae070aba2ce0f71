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

from sqlalchemy import Engine, bindparam, select, update
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
        self._insert = _Insert(self._engine)

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
        self._insert.close()
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
            self._insert.drop_connection()
            _deliver(batch, [exc] * len(batch))
            return
        _deliver(batch, receipts)
        fresh = [r.message_id for r in receipts
                 if not r.duplicate and r.status is InboxStatus.RECEIVED]
        if fresh and self._on_committed is not None:
            self._on_committed(fresh)

    def _write(self, batch: list[_Pending]) -> list[Receipt]:
        """Store a batch: one INSERT of every message whose key is not stored already,
        committed on its own; then, only where there were resends, one transaction that
        reads what each was answered and counts it.

        A resend within the batch conflicts with the row inserted for its first copy, so
        it is answered as that one. Should the second step fail, the batch's senders get an
        error and resend; the messages stored by the first step are then resends."""
        rows = [_new_row(item) for item in batch]
        ids = self._insert.run(rows)
        receipts: list[Receipt | None] = [
            None if message_id is None else _receipt_of(message_id, values, False)
            for values, message_id in zip(rows, ids, strict=True)]
        if None in receipts:
            with self._engine.begin() as conn:
                for index, values in enumerate(rows):
                    if receipts[index] is not None:
                        continue
                    stored = conn.execute(select(*_KNOWN).where(
                        *(_INBOX.c[name] == values[name] for name in _KEY_COLUMNS))).one()
                    receipts[index] = _receipt_of(stored.id, dict(stored._mapping), True)
                    conn.execute(update(_INBOX).where(_INBOX.c.id == stored.id).values(
                        duplicate_count=_INBOX.c.duplicate_count + 1,
                        last_duplicate_at=utcnow()))
        answered = [receipt for receipt in receipts if receipt is not None]
        for receipt, item in zip(answered, batch, strict=True):
            if receipt.duplicate:
                logs.inbox.info("resend of control id %r from %s: answered as before (%s)",
                                item.assessment.control_id, item.peer, receipt.status.value)
        return answered


class _Insert:
    """The inbox's one statement a batch: INSERT ... VALUES (...), (...) ON CONFLICT DO
    NOTHING RETURNING the new rows' ids and keys, compiled once for each batch size and run
    on the driver's own connection, which commits each statement by itself.

    This runs for every batch on the ACK path. Through SQLAlchemy's Connection it was most
    of the receiver's time: pool checkout and reset, a BEGIN, a SELECT for resends, the
    INSERT and the COMMIT, each a call that gives up the GIL and waits to get it back while
    the listener holds it. Now a batch is one call (and on PostgreSQL one round trip)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        dialect = engine.dialect
        if dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"the inbox supports SQLite and PostgreSQL, not {dialect.name}")
        self._postgres = dialect.name == "postgresql"
        self._module = postgresql if self._postgres else sqlite
        self._statements: dict[int, tuple[str, Sequence[str] | None]] = {}
        self._columns: tuple[str, ...] = ()
        self._convert: dict[str, Callable[[Any], Any]] = {}
        self._raw: Any = None  # the pool's connection, held from batch to batch

    def _statement(self, count: int) -> tuple[str, Sequence[str] | None]:
        """The SQL for `count` rows and, for a driver with positional parameters, the
        order of their names."""
        if count not in self._statements:
            rows = [{name: bindparam(f"r{index}_{name}", type_=_INBOX.c[name].type)
                     for name in self._columns} for index in range(count)]
            statement = self._module.insert(_INBOX).values(rows).on_conflict_do_nothing(
                index_elements=[_INBOX.c[name] for name in _KEY_COLUMNS]).returning(
                _INBOX.c.id, *(_INBOX.c[name] for name in _KEY_COLUMNS))
            compiled = statement.compile(dialect=self._engine.dialect)
            self._statements[count] = (compiled.string, compiled.positiontup)
        return self._statements[count]

    def _connection(self) -> Any:
        if self._raw is None:
            self._raw = self._engine.raw_connection()
            if self._postgres:
                self._raw.dbapi_connection.autocommit = True
            # SQLite's connections run without pysqlite's implicit BEGIN (store/db.py), so
            # each statement there commits by itself too.
        return self._raw

    def drop_connection(self) -> None:
        """After a failure: the next batch starts on a fresh connection (the server may
        have restarted)."""
        if self._raw is not None:
            with contextlib.suppress(Exception):
                self._raw.invalidate()
            self._raw = None

    def close(self) -> None:
        if self._raw is not None:
            with contextlib.suppress(Exception):
                if self._postgres:
                    self._raw.dbapi_connection.autocommit = False
                self._raw.close()
            self._raw = None

    def run(self, rows: list[dict[str, Any]]) -> list[int | None]:
        """Each row's new id, committed; None where its key was stored already."""
        if not self._columns:
            dialect = self._engine.dialect
            self._columns = tuple(rows[0])
            # The columns' own conversions (UTCDateTime to naive UTC, then the driver's).
            self._convert = {name: process for name in self._columns
                             if (process := _INBOX.c[name].type.bind_processor(dialect))}
        sql, order = self._statement(len(rows))
        named: dict[str, Any] = {}
        for index, row in enumerate(rows):
            for name, value in row.items():
                convert = self._convert.get(name)
                named[f"r{index}_{name}"] = value if convert is None else convert(value)
        cursor = self._connection().cursor()
        try:
            cursor.execute(sql, named if order is None else [named[name] for name in order])
            stored = {tuple(found[1:]): found[0] for found in cursor.fetchall()}
        finally:
            cursor.close()
        # pop: a second copy of a message in the same batch is a resend of the first.
        return [stored.pop(tuple(row[name] for name in _KEY_COLUMNS), None) for row in rows]
