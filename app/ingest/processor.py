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
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from app import logs
from app.config import IngestConfig
from app.store.db import write_gate, writer
from app.store.models import (
    InboxMessage,
    InboxStatus,
    PatientChangeRecord,
    table_of,
    utcnow,
)
from app.store.patients import apply_many, apply_parsed
from integrations.hl7.events import MessageContentError, ParsedMessage
from integrations.hl7.header import HeaderError, read_header
from integrations.hl7.parse import parse_message


@dataclass(frozen=True, slots=True)
class BatchSizes:
    """How much one write transaction of the bulk processor takes on."""

    chunk: int  # messages read and parsed ahead of one write transaction
    piece: int  # ... applied together (the budget is looked at between pieces),
    piece_rows: int  # ... or fewer, when their results would be more rows than this
    budget_s: float  # no further piece once the transaction has run this long


# SQLite has one write lock, and the inbox writer (the ACK path) waits behind the
# processor's transaction: hold it briefly, and the ACK path waits for at most one piece
# (16 results of 20 OBX took 20 ms).
SQLITE_SIZES = BatchSizes(chunk=32, piece=16, piece_rows=128, budget_s=0.025)
# PostgreSQL locks rows: the ACK path's inserts never wait for a processor, so a
# transaction may take more and the round trips and commits per message fall (20-OBX
# results alone, one processor: 385 msg/s with the SQLite sizes, 600 with these). The
# budget still bounds how long a fast lane could wait for a patient row held here.
POSTGRES_SIZES = BatchSizes(chunk=128, piece=64, piece_rows=1280, budget_s=0.1)
POLL_S = 1.0
FAST_LANE_GRACE_S = 10.0  # the fast lane's messages wait this long before the worker takes them


class Signal(Protocol):
    """What the processor needs of an event: threading.Event here, or the worker process's
    WakeSignal and StopFlag (app/ingest/worker.py)."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...


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


def unprocessed(engine: Engine) -> int:
    """Messages stored and not yet processed (status received: due, or waiting to retry).
    A new connection each time, so a caller that polls sees the latest commits."""
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(_INBOX).where(
            _INBOX.c.status == InboxStatus.RECEIVED.value)) or 0


class Processor:
    """Applies received messages to the store, on its own thread or on demand."""

    def __init__(self, engine: Engine, config: IngestConfig | None = None,
                 on_change: Callable[[PatientChanged], None] | None = None, *,
                 wake: Signal | None = None, stop: Signal | None = None,
                 urgent: bool = False, journal: bool = False,
                 share: tuple[int, int] = (0, 1)) -> None:
        """`journal`: write the change journal a department's workstations follow (a
        receiver's processors only: nobody reads it elsewhere). `share` (k, n): this is
        bulk processor k of n, and takes the inbox shards s with s % n == k (one patient's
        messages are one shard's, so they stay in order)."""
        self._reader = engine
        self._engine = writer(engine)
        self._gate = write_gate(engine)
        # The fast lane (`urgent`) takes the write gate as the ACK path does and does not
        # step aside; the bulk processor gives way to both.
        self._urgent = urgent
        self._journal = journal
        # On PostgreSQL two processors (the bulk worker and the fast lane, an old worker not
        # yet gone, a second listener) must never take the same message: each locks it.
        # The bulk processor skips a message that is taken (and that patient's later ones,
        # for order); the fast lane waits for it, so it never overtakes an earlier message.
        if engine.dialect.name != "postgresql":
            self._load = _LOAD
        else:
            self._load = _LOAD.with_for_update(skip_locked=not urgent)
        self._config = config or IngestConfig()
        self._sizes = POSTGRES_SIZES if engine.dialect.name == "postgresql" else SQLITE_SIZES
        self._share = share
        index, count = share
        self._due = _DUE if count == 1 else _DUE.where(_INBOX.c.shard % count == index)
        self._tz = feed_timezone(self._config.feed_timezone)
        self._on_change = on_change
        # Threading events here; in the worker process, its cross-process signals.
        self._wake: Signal = wake or threading.Event()
        self._stop: Signal = stop or threading.Event()
        self._thread: threading.Thread | None = None
        self._delivering = 0  # batches committed whose changes are not yet handed over
        self._next_prune = 0.0  # monotonic time of the next trim of the change journal
        self._since_vacuum = 0  # messages handled since the tables were last tended ...
        self._tend_every = FIRST_TEND  # doubling to VACUUM_EVERY: statistics as tables grow
        self._server_vacuums: bool | None = None  # ... where the server's autovacuum is off
        self._ahead: dict[int, Row] = {}  # read and parsed, not yet applied
        self._parsed: dict[int, tuple[ParsedMessage, ...] | str] = {}

    def wake(self, _ids: object = None) -> None:
        """Something was received: process it now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="clarion-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the message in hand and stop; the store is left consistent."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Process until stopped: now, whenever woken, and every `POLL_S` regardless."""
        while not self._stop.is_set():
            try:
                busy = self.process_and_tend()
            except Exception as exc:  # the loop must survive a database outage and try again
                logs.ingest.error("inbox processing pass failed (%s); retrying",
                                  logs.describe_error(exc))
                busy = 0
            if not busy:
                self._wake.wait(POLL_S)
                self._wake.clear()

    def process_and_tend(self) -> int:
        """One pass of the loop: process what is due, then trim the journal and tend the
        tables when it is time. Returns how many messages it handled."""
        busy = self.process_pending()
        self._since_vacuum += busy
        self.prune_journal()
        self.tend_tables()
        return busy

    def tend_tables(self, force: bool = False) -> bool:
        """Vacuum and analyse on a PostgreSQL server whose autovacuum is off.

        Each message updates its inbox row once, and every dead row left slows the
        processors' question for the oldest received messages (285 ms after 250,000
        messages unvacuumed, 2 ms vacuumed). And with no statistics, PostgreSQL takes a
        lookup of a batch's 320 result keys for most of the table and reads all of it
        (200 ms a batch at 600,000 results). Migration 0013 has autovacuum tend the inbox
        every 10,000 changes; where a server runs without autovacuum, bulk processor 1 of
        n vacuums the inbox and analyses the tables processing reads, after its first
        `FIRST_TEND` messages, then after twice as many each time (plans made on a table's
        first thousand rows went on reading all of it as it grew: the backlog at 500 msg/s
        rose to 23,700 before the next analysis), up to every `VACUUM_EVERY`. True if it
        did."""
        if self._urgent or self._share[0] != 0 or self._engine.dialect.name != "postgresql":
            return False
        if not force and self._since_vacuum < self._tend_every:
            return False
        self._since_vacuum = 0
        self._tend_every = min(VACUUM_EVERY, 2 * self._tend_every)
        if self._server_vacuums is None:
            with self._reader.connect() as conn:
                self._server_vacuums = conn.scalar(text("SHOW autovacuum")) == "on"
            if not self._server_vacuums:
                logs.ingest.warning(
                    "autovacuum is off on the PostgreSQL server: the receiver vacuums and "
                    "analyses its tables itself, after %d messages and then up to every %d "
                    "(a DBA can turn it on: ALTER SYSTEM SET autovacuum = on; SELECT "
                    "pg_reload_conf();)", FIRST_TEND, VACUUM_EVERY)
        if self._server_vacuums:
            return False
        try:
            with self._engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM (ANALYZE) inbox_messages"))
                conn.execute(text(f"ANALYZE {', '.join(_ANALYSED)}"))
        except Exception as exc:  # not the owner, say: the server's own settings decide
            logs.ingest.warning("could not vacuum or analyse its tables (%s); not trying again",
                                logs.describe_error(exc))
            self._server_vacuums = True
            return False
        return True

    def prune_journal(self, force: bool = False) -> int:
        """Drop change-journal rows older than `journal_days` (at most hourly, by the bulk
        processor, when the ACK path is not waiting). Returns how many went."""
        if not self._journal or self._urgent or self._share[0] != 0 or \
                (not force and time.monotonic() < self._next_prune):
            return 0
        self._next_prune = time.monotonic() + JOURNAL_PRUNE_S
        cutoff = utcnow() - timedelta(days=self._config.journal_days)
        with self._gate.background(), self._engine.begin() as conn:
            gone = conn.execute(delete(_CHANGES).where(_CHANGES.c.processed_at < cutoff))
        return int(gone.rowcount or 0)

    def process_pending(self, limit: int = 1000) -> int:
        """One pass over the received messages that are due. Returns how many it handled."""
        now = utcnow()
        with self._reader.connect() as conn:
            due = conn.execute(self._due.limit(limit)).all()
        waiting: set[str] = set()  # patients with an earlier message waiting for a retry
        todo: list[int] = []
        fast_until = now - timedelta(seconds=FAST_LANE_GRACE_S)
        for message_id, key, next_at, lane, received_at in due:
            # The fast lane's messages are its own for a while: a low-priority process that
            # took one would hold the write lock the lane waits for (and, on a busy machine,
            # hold it for as long as the scheduler leaves it off the CPU). Should the lane
            # fail, they are the bulk processor's after the grace period.
            in_lane = lane and not self._urgent and received_at > fast_until
            if in_lane or (next_at is not None and next_at > now):
                if key:
                    waiting.add(key)
                continue
            if key and key in waiting:
                continue
            todo.append(message_id)
        handled = 0
        try:
            while todo and not self._stop.is_set():
                handled += self._process_batch(todo, waiting)
        finally:
            self._ahead.clear()
            self._parsed.clear()
        return handled

    def process_patient(self, patient_key: str, up_to: int) -> int:
        """The fast lane: this patient's received messages up to `up_to`, in order, now.
        Stops before a message that waits for a retry (the bulk processor owns retries),
        so a later message never overtakes it. Returns how many it handled."""
        now = utcnow()
        with self._reader.connect() as conn:
            due = conn.execute(_PATIENT_DUE, {"key": patient_key, "up_to": up_to}).all()
        todo: list[int] = []
        for message_id, next_at in due:
            if next_at is not None and next_at > now:
                break
            todo.append(message_id)
        handled = 0
        try:
            while todo and not self._stop.is_set():
                handled += self._process_batch(todo, set())
        finally:
            self._ahead.clear()
            self._parsed.clear()
        return handled

    def _process_batch(self, todo: list[int], waiting: set[str]) -> int:
        """Process the next few due messages: parse them first, outside the write lock
        (parsing is half the work), then apply them in one transaction, giving way to the
        ACK path when it is waiting."""
        size = self._sizes.chunk
        chunk, todo[:] = todo[:size], todo[size:]
        rows, parsed = self._ahead, self._parsed  # what an earlier batch read but left
        unread = [i for i in chunk if i not in rows]
        if unread:
            with self._reader.connect() as conn:
                for row in conn.execute(_LOAD_MANY, {"ids": unread}):
                    rows[row.id] = row
        for i in unread:
            if i in rows and rows[i].status == InboxStatus.RECEIVED.value:
                parsed[i] = self._parse(rows[i])
        changes: list[PatientChanged] = []
        handled = 0
        self._delivering += 1
        try:
            handled = self._apply_batch(chunk, rows, parsed, waiting, todo, changes)
            for change in changes:
                if self._on_change is not None:
                    try:
                        self._on_change(change)
                    except Exception:  # a listener's failure must not undo the ingest
                        logs.ingest.exception("patient-changed callback failed")
        finally:
            self._delivering -= 1
        return handled

    def settled(self) -> bool:
        """No processed message's change is still on its way to `on_change`."""
        return self._delivering == 0

    def _apply_batch(self, chunk: list[int], rows: dict[int, Row],
                     parsed: dict[int, tuple[ParsedMessage, ...] | str], waiting: set[str],
                     todo: list[int], changes: list[PatientChanged]) -> int:
        handled = 0
        gate = self._gate.urgent() if self._urgent else self._gate.background()
        with gate, self._engine.begin() as conn:
            started = time.perf_counter()  # the budget counts from holding the gate
            position = 0
            for piece in _pieces(chunk, parsed, self._sizes):
                # At least one piece per turn, whatever the wait for the gate was.
                if handled and not self._urgent and (
                        time.perf_counter() - started > self._sizes.budget_s
                        or self._gate.urgent_waiting()):
                    todo[:0] = chunk[position:]  # next time: the ACK path goes first
                    break
                handled += self._apply_piece(conn, piece, rows, parsed, waiting, changes)
                position += len(piece)
            if changes and self._journal:
                self._write_journal(conn, changes)
        return handled

    @staticmethod
    def _write_journal(conn: Connection, changes: list[PatientChanged]) -> None:
        """The batch's changes in the journal, last thing before the commit. Workstations
        read it by id (after the last one they saw), so ids must be committed in order:
        on PostgreSQL, where several processors commit side by side, each takes a lock
        for its journal rows that its commit releases, so no id is committed after a
        later one (SQLite commits one transaction at a time)."""
        if conn.dialect.name == "postgresql":
            conn.execute(_JOURNAL_LOCK)
        conn.execute(insert(_CHANGES), [journal_row(change) for change in changes])

    def _apply_piece(self, conn: Connection, piece: list[int], rows: dict[int, Row],
                     parsed: dict[int, tuple[ParsedMessage, ...] | str], waiting: set[str],
                     changes: list[PatientChanged]) -> int:
        """A few messages in one go (app/store/patients.apply_many); should any of them
        fail, each on its own, so that the others still go in."""
        mine = [i for i in piece if i in rows and i in parsed]
        # Still ours? (another processor may have taken them; on PostgreSQL the rows stay
        # locked until we commit)
        current = {r.id: r for r in conn.execute(self._load, {"ids": mine})} if mine else {}
        handled = 0
        usable: list[tuple[Row, tuple[ParsedMessage, ...], str]] = []
        for message_id in mine:
            row, content = rows.pop(message_id), parsed.pop(message_id)
            latest = current.get(message_id)
            if latest is None:  # locked by another processor: this patient waits for it
                if row.patient_key:
                    waiting.add(row.patient_key)
                continue
            if latest.status != InboxStatus.RECEIVED.value or (
                    latest.patient_key and latest.patient_key in waiting):
                continue
            handled += 1
            if isinstance(content, str):
                self._fail(conn, row, "", content, utcnow(), final=True)
                continue
            patient_key = _patient_key(content)
            if patient_key in waiting:  # an earlier message of this patient waits for a retry
                conn.execute(_KEYED, {"message_id": row.id, "key": patient_key})
                continue
            usable.append((row, content, patient_key))
        if not usable:
            return handled
        done: list[PatientChanged] = []
        try:
            with conn.begin_nested():
                applied = apply_many(conn, [(row.id, content) for row, content, _ in usable])
        except Exception as exc:  # noqa: BLE001 - each again on its own: the culprit is found
            logs.ingest.debug("%d messages applied together failed (%s); one by one",
                              len(usable), logs.describe_error(exc))
            for row, content, _ in usable:
                done += self._process_one(conn, row, content, waiting)
        else:
            now = utcnow()
            conn.execute(_DONE, [{"message_id": row.id, "key": patient_key, "at": now,
                                  "attempts": row.attempts + 1}
                                 for row, _, patient_key in usable])
            for (row, content, patient_key), patient_ids in zip(usable, applied, strict=True):
                done += self._processed(row, content, patient_key, patient_ids, now)
        changes += done  # journalled at the end of the batch's transaction
        return handled

    def _parse(self, row: Row) -> tuple[ParsedMessage, ...] | str:
        """The message's content, or why it cannot be used (quarantined at once)."""
        try:
            header = read_header(row.raw)
            return parse_message(header.text, header.message_type, header.trigger, self._tz)
        except MessageContentError as exc:
            return f"content error ({exc.location or 'message'}): {exc}"
        except HeaderError as exc:  # readable at receipt, so only a changed parser gets here
            return f"header error: {exc}"

    def _process_one(self, conn: Connection, row: Row, parsed: tuple[ParsedMessage, ...] | str,
                     waiting: set[str]) -> list[PatientChanged]:
        now = utcnow()
        if isinstance(parsed, str):
            self._fail(conn, row, "", parsed, now, final=True)
            return []
        patient_key = _patient_key(parsed)
        if patient_key in waiting:  # an earlier message of this patient waits for a retry
            conn.execute(_KEYED, {"message_id": row.id, "key": patient_key})
            return []
        try:
            with conn.begin_nested():
                patient_ids = apply_parsed(conn, row.id, parsed)
        except Exception as exc:  # anything else may be transient: retry, then quarantine
            if self._fail(conn, row, patient_key, logs.describe_error(exc), now, final=False):
                waiting.add(patient_key)
            return []
        conn.execute(_DONE, {"message_id": row.id, "key": patient_key, "at": now,
                             "attempts": row.attempts + 1})
        return self._processed(row, parsed, patient_key, patient_ids, now)

    @staticmethod
    def _processed(row: Row, parsed: tuple[ParsedMessage, ...], patient_key: str,
                   patient_ids: list[int], now: datetime) -> list[PatientChanged]:
        """What a processed message changed, for the open-patient hook and the journal."""
        loincs = tuple(sorted({o.loinc for p in parsed for o in p.observations if o.loinc}))
        logs.ingest.debug("processed %s^%s control id %r for %s", row.message_type,
                          row.trigger, row.control_id, patient_key)
        changes = []
        for pid, item in zip(patient_ids, parsed, strict=True):
            visit = item.visit
            changes.append(PatientChanged(
                pid, row.id, row.message_type, row.trigger, loincs, row.received_at, now,
                location=visit.location if visit else "",
                providers=tuple(p for p in (visit.attending, visit.admitting) if p)
                if visit else ()))
        return changes

    def _fail(self, conn: Connection, row: Row, patient_key: str, error: str,
              now: datetime, *, final: bool) -> bool:
        """Record a failed attempt; True if the message will be tried again."""
        attempts = row.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_error": error[:4000],
                                  "next_attempt_at": None}
        if patient_key:
            values["patient_key"] = patient_key
        if final or attempts >= self._config.max_attempts:
            values["status"] = InboxStatus.FAILED.value
            logs.ingest.error("quarantined message %d (control id %r) after %d attempt(s): %s",
                              row.id, row.control_id, attempts, error)
        else:
            delay = self._config.retry_backoff_s * 2 ** (attempts - 1)
            values["next_attempt_at"] = now + timedelta(seconds=delay)
            logs.ingest.warning("message %d (control id %r) failed attempt %d, retry in "
                                "%.1f s: %s", row.id, row.control_id, attempts, delay, error)
        conn.execute(update(_INBOX).where(_INBOX.c.id == row.id).values(**values))
        return "status" not in values


# The processor's statements, built once: it runs them for every message.
_INBOX = table_of(InboxMessage)
_CHANGES = table_of(PatientChangeRecord)
# The journal's writers take this transaction-level advisory lock (a number of our own,
# "CLARION" in ASCII) before their rows; their commit releases it.
_JOURNAL_LOCK = text("SELECT pg_advisory_xact_lock(67766582737879)")
JOURNAL_PRUNE_S = 3600.0
VACUUM_EVERY = 10_000  # messages, where the server does not vacuum (`tend_tables`)
FIRST_TEND = 1_000  # ... and the first time, then doubling: statistics of growing tables
# What processing looks up, by the statistics ANALYZE keeps
_ANALYSED = ("observations", "encounters", "patients", "patient_identifiers", "diagnoses")


def _pieces(chunk: list[int], parsed: dict[int, tuple[ParsedMessage, ...] | str],
            sizes: BatchSizes) -> list[list[int]]:
    """The chunk in pieces of at most `sizes.piece` messages and `sizes.piece_rows` result
    rows (a message larger than that is a piece of its own)."""
    pieces: list[list[int]] = [[]]
    rows = 0
    for message_id in chunk:
        content = parsed.get(message_id, "")
        size = 1 + (sum(len(p.observations) for p in content)
                    if not isinstance(content, str) else 0)
        if pieces[-1] and (len(pieces[-1]) >= sizes.piece or rows + size > sizes.piece_rows):
            pieces.append([])
            rows = 0
        pieces[-1].append(message_id)
        rows += size
    return [piece for piece in pieces if piece]


def _patient_key(parsed: tuple[ParsedMessage, ...]) -> str:
    """The pseudonym that orders a message among its patient's (PID-3's first)."""
    first = parsed[0].patient.identifiers[0]
    return logs.pseudonym(first.value, first.authority)


def journal_row(change: PatientChanged) -> dict[str, Any]:
    return {"patient_id": change.patient_id, "message_id": change.message_id,
            "message_type": change.message_type, "trigger": change.trigger,
            "loincs": ",".join(change.loincs), "location": change.location,
            "providers": ",".join(change.providers), "received_at": change.received_at,
            "processed_at": change.processed_at}


def from_journal(row: Any) -> PatientChanged:
    """A journal row as the change it records (app/ingest/journal.py)."""
    return PatientChanged(
        row.patient_id, row.message_id, row.message_type, row.trigger,
        tuple(filter(None, row.loincs.split(","))), row.received_at, row.processed_at,
        location=row.location, providers=tuple(filter(None, row.providers.split(","))))
_LOAD_MANY = select(_INBOX.c.id, _INBOX.c.raw, _INBOX.c.status, _INBOX.c.patient_key,
                    _INBOX.c.attempts, _INBOX.c.received_at, _INBOX.c.message_type,
                    _INBOX.c.trigger, _INBOX.c.control_id).where(
    _INBOX.c.id.in_(bindparam("ids", expanding=True)))
_DUE = select(_INBOX.c.id, _INBOX.c.patient_key, _INBOX.c.next_attempt_at, _INBOX.c.lane,
              _INBOX.c.received_at).where(
    _INBOX.c.status == InboxStatus.RECEIVED.value).order_by(_INBOX.c.id)
_LOAD = select(_INBOX.c.id, _INBOX.c.status, _INBOX.c.patient_key).where(
    _INBOX.c.id.in_(bindparam("ids", expanding=True)))
_DONE = update(_INBOX).where(_INBOX.c.id == bindparam("message_id")).values(
    status=InboxStatus.PROCESSED.value, processed_at=bindparam("at"),
    attempts=bindparam("attempts"), next_attempt_at=None, patient_key=bindparam("key"))
_PATIENT_DUE = select(_INBOX.c.id, _INBOX.c.next_attempt_at).where(
    _INBOX.c.patient_key == bindparam("key"), _INBOX.c.status == InboxStatus.RECEIVED.value,
    _INBOX.c.id <= bindparam("up_to")).order_by(_INBOX.c.id)
_KEYED = update(_INBOX).where(_INBOX.c.id == bindparam("message_id")).values(
    patient_key=bindparam("key"))
