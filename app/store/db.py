"""Opening the store: engine settings per backend, and migrations on start."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from app import logs

MIGRATIONS = Path(__file__).parent / "migrations"


WRITE = "clarion_write"  # execution option: this connection's transactions will write


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; SQLAlchemy's documented fix is
    # to turn it off and emit BEGIN ourselves (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the UI, `clarion inbox`) run beside the writer; FULL makes each
    # commit durable before the ACK goes out, which is the whole point of the inbox.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_derived(dbapi_connection: Any, _record: Any) -> None:
    # For connections that only write what can be rebuilt from the durable inbox (the
    # processing worker): commit without waiting for the disk. SQLite documents WAL with
    # synchronous=NORMAL as safe from corruption; a power cut may roll back the last
    # commits, and the messages they processed are still RECEIVED in the inbox, so they are
    # processed again on restart. The next durable commit's fsync covers these WAL frames.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _postgresql_derived(dbapi_connection: Any, _record: Any) -> None:
    # The same on PostgreSQL: asynchronous commit may lose the last transactions on a
    # server crash, never consistency (PostgreSQL documentation, "Asynchronous Commit").
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    dbapi_connection.autocommit = autocommit


def _sqlite_begin(connection: Any) -> None:
    # A writer takes the write lock up front: a deferred transaction that reads and then
    # writes can fail at once with SQLITE_BUSY_SNAPSHOT when another writer got in between.
    write = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def writer(engine: Engine) -> Engine:
    """The same engine, for sessions that write (BEGIN IMMEDIATE on SQLite)."""
    return engine.execution_options(**{WRITE: True})


class WriteGate:
    """Orders the write transactions on one SQLite database, the ACK path first.

    SQLite has one write lock and its busy handler is not fair: a processor that commits
    batch after batch can keep the inbox writer sleeping in back-off for 100 ms at a time,
    and every sender waits for its ACK meanwhile. Here writers queue on a lock instead,
    and background work steps aside whenever urgent work is waiting. The lock and counters
    are multiprocessing primitives, so the gate also orders the processing worker process
    (app/ingest/worker.py), which receives it when it is spawned.
    """

    QUIET_S = 0.003  # background work starts only after this long without urgent work ...
    MAX_DEFER_S = 1.0  # ... but never waits longer than this, so it cannot starve
    POLL_S = 0.0005  # how often waiting background work looks again
    RECHECK_S = 0.5  # a writer waiting for the lock looks whether it was replaced

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self.reset()

    def reset(self) -> None:
        """New primitives: a worker process killed while holding the gate must not keep
        it shut. Called by its parent before it starts another worker."""
        self._lock = self._ctx.Lock()
        self._urgent_waiting = self._ctx.Value("i", 0)
        self._last_urgent = self._ctx.Value("d", 0.0, lock=False)

    def _acquire(self) -> Any:
        """The lock, once held; re-read while waiting, in case `reset` replaced it."""
        while True:
            lock = self._lock
            if lock.acquire(True, self.RECHECK_S):
                return lock

    def _count_urgent(self, step: int) -> None:
        counter = self._urgent_waiting
        with counter.get_lock():
            counter.value += step

    @contextmanager
    def urgent(self) -> Iterator[None]:
        """Hold the gate for ACK-path work; background work yields to it."""
        self._count_urgent(1)
        lock = self._acquire()
        self._count_urgent(-1)
        try:
            yield
        finally:
            self._last_urgent.value = time.monotonic()
            lock.release()

    @contextmanager
    def background(self) -> Iterator[None]:
        """Hold the gate for background work, once no urgent work is waiting.

        While receipts stream in, background work waits for a gap of `QUIET_S` (bounded by
        `MAX_DEFER_S`), so that a sender's next message rarely queues behind it.
        """
        deadline = time.monotonic() + self.MAX_DEFER_S
        while time.monotonic() < deadline:
            quiet_for = time.monotonic() - self._last_urgent.value
            if quiet_for >= self.QUIET_S:
                break
            time.sleep(self.QUIET_S - quiet_for)
        while True:
            while self._urgent_waiting.value:
                time.sleep(self.POLL_S)
            lock = self._acquire()
            if not self._urgent_waiting.value:
                break
            lock.release()  # urgent work arrived between the check and the lock
        try:
            yield
        finally:
            lock.release()

    def urgent_waiting(self) -> bool:
        """Whether ACK-path work is waiting: background work should finish up soon."""
        return self._urgent_waiting.value > 0


_gates: dict[str, WriteGate] = {}
_gates_lock = threading.Lock()


class _OpenGate(WriteGate):
    """PostgreSQL locks rows, not the database: writers need no turn-taking there."""

    def __init__(self) -> None:
        pass

    def reset(self) -> None:
        pass

    @contextmanager
    def urgent(self) -> Iterator[None]:
        yield

    @contextmanager
    def background(self) -> Iterator[None]:
        yield

    def urgent_waiting(self) -> bool:
        return False


_open_gate = _OpenGate()


def write_gate(engine: Engine) -> WriteGate:
    """The gate shared by every writer of this database in this process (SQLite only)."""
    if engine.dialect.name != "sqlite":
        return _open_gate
    key = _gate_key(engine)
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:  # not setdefault: a gate holds OS semaphores, made only when needed
            gate = _gates[key] = WriteGate()
        return gate


def share_write_gate(engine: Engine, gate: WriteGate) -> None:
    """Use `gate` (another process's, passed at spawn) for this database in this process."""
    if engine.dialect.name == "sqlite":
        with _gates_lock:
            _gates[_gate_key(engine)] = gate


def _gate_key(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def make_engine(url: str, derived_only: bool = False) -> Engine:
    """An engine for `url`; SQLite files get their directory, WAL and durable commits.

    `derived_only`: this engine writes only what can be rebuilt from the durable inbox
    (the processing worker), so its commits need not wait for the disk; the inbox's must.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        if derived_only:
            event.listen(engine, "connect", _sqlite_derived)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    if derived_only and parsed.get_backend_name() == "postgresql":
        event.listen(engine, "connect", _postgresql_derived)
    return engine


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration not yet applied (idempotent)."""
    # Imported here: the processing worker never migrates, and Alembic (with Mako) is a
    # fifth of its start-up imports.
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with writer(engine).begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
    logs.store.debug("store migrated: %s", engine.url.render_as_string(hide_password=True))


def open_store(url: str) -> Engine:
    """Engine + migrations: what every command does first."""
    engine = make_engine(url)
    migrate(engine)
    return engine
