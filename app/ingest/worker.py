"""Processing in a worker process, so that receipt and ACKs keep a core to themselves.

Parsing and applying a message costs several times what receiving it does, and in one
process both would share one interpreter lock: a burst of processing would delay ACKs.
`WorkerProcess` runs the same `Processor` (app/ingest/processor.py) in a child process started with
"spawn" (as on Windows), at a lower CPU priority where the platform allows it:

- the parent wakes it when the inbox commits something (`WakeSignal`, a semaphore), and
  it polls anyway, so a lost wake-up costs at most `POLL_S` (app/ingest/processor.py);
- on SQLite it shares the parent's write gate, so the inbox writer still goes first;
- what it reports — patient changes and its log records — comes back over one queue and
  is handed to the parent's callback and loggers on the parent's reader thread (one log
  file, one writer);
- it exits when asked, or by itself when the parent is gone (kill -9 included); if it dies,
  the parent logs that and starts another, after a pause that doubles while workers keep
  dying young (the store is down, say) and starts over once one has run `STABLE_S`.
  Nothing is lost either way: a message is processed inside a transaction, and whatever is
  still `received` is processed later.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from app import logs
from app.config import IngestConfig
from app.ingest.processor import PatientChanged, Processor
from app.store.db import WriteGate, make_engine, share_write_gate, write_gate

PARENT_CHECK_S = 0.5  # how often the worker looks whether its parent is still there
ORPHAN_GRACE_S = 5.0  # an orphaned worker that has not finished by then is ended
RESTART_DELAY_S = 1.0  # a worker that died is started again after this pause ...
MAX_RESTART_DELAY_S = 60.0  # ... doubled while it keeps dying, up to this
STABLE_S = 300.0  # a worker that ran this long before dying starts the back-off over
NICENESS = 19  # POSIX: the worker runs when receipt leaves the CPU idle


class WakeSignal:
    """A wake-up across processes that a killed process cannot jam.

    A multiprocessing.Event is a condition variable: `set()` waits for every sleeper to
    acknowledge, and a worker killed while sleeping never does — the inbox writer would
    hang on the next wake-up. Releasing a semaphore never waits.
    """

    def __init__(self, ctx: Any) -> None:
        self._semaphore = ctx.Semaphore(0)

    def set(self) -> None:
        self._semaphore.release()

    def clear(self) -> None:
        while self._semaphore.acquire(False):
            pass

    def is_set(self) -> bool:
        if self._semaphore.acquire(False):
            self._semaphore.release()
            return True
        return False

    def wait(self, timeout: float | None = None) -> bool:
        woken = bool(self._semaphore.acquire(True, timeout))
        if woken:
            self._semaphore.release()  # stays set until cleared, as an Event does
        return woken


class StopFlag:
    """A stop request across processes: one shared byte, no lock to be left held."""

    def __init__(self, ctx: Any) -> None:
        self._value = ctx.Value("b", 0, lock=False)

    def set(self) -> None:
        self._value.value = 1

    def clear(self) -> None:
        self._value.value = 0

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True


def _watch_parent(parent_pid: int, stop: StopFlag, wake: WakeSignal) -> None:
    while not stop.is_set():
        if os.getppid() != parent_pid:
            stop.set()
            wake.set()
            # A parent killed while it held the write gate never lets go of it, and a
            # worker waiting for it would wait for ever: if the worker has not finished
            # by itself after a grace period, it ends here. What it was writing rolls
            # back, and is rebuilt from the inbox by the next worker.
            time.sleep(ORPHAN_GRACE_S)
            os._exit(0)
        time.sleep(PARENT_CHECK_S)


def _worker_main(url: str, config: IngestConfig, log_level: int, pseudonym_key: bytes,
                 gate: WriteGate, wake: WakeSignal, stop: StopFlag, reports: Any,
                 sent: Any, parent_pid: int, journal: bool,
                 share: tuple[int, int] = (0, 1)) -> None:
    """The worker process: process the inbox (its `share` of it) until stopped or
    orphaned."""
    root = logging.getLogger("clarion")
    root.setLevel(log_level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    # The worker's log records go to the parent, to be written by its handlers.
    root.addHandler(logging.handlers.QueueHandler(reports))
    root.propagate = False
    logs.set_pseudonym_key(pseudonym_key)
    if hasattr(os, "nice"):
        os.nice(NICENESS)
    threading.Thread(target=_watch_parent, args=(parent_pid, stop, wake),
                     name="clarion-parent-watch", daemon=True).start()
    # The parent migrated the store before starting us. Everything the worker writes
    # can be rebuilt from the inbox, so its commits need not wait for the disk.
    engine = make_engine(url, derived_only=True)
    share_write_gate(engine, gate)

    def report(change: PatientChanged) -> None:
        sent.value += 1  # before the put: the parent never thinks it has seen them all early
        reports.put(change)

    try:
        Processor(engine, config, report, wake=wake, stop=stop, journal=journal,
                  share=share).run()
    finally:
        engine.dispose()
        if os.getppid() != parent_pid:
            # Orphaned: nobody will read what is still on its way to the parent. A queue
            # waits at exit until its buffer reaches the pipe, and this process holds the
            # pipe's read end too, so a full pipe would keep it alive for ever.
            reports.cancel_join_thread()


class WorkerProcess:
    """The processor in a child process; the same start/wake/stop as `Processor`."""

    def __init__(self, engine: Engine, config: IngestConfig,
                 on_change: Callable[[PatientChanged], None] | None = None, *,
                 restart_delay_s: float = RESTART_DELAY_S, stable_s: float = STABLE_S,
                 journal: bool = False, share: tuple[int, int] = (0, 1)) -> None:
        self._url = engine.url.render_as_string(hide_password=False)
        self._journal = journal
        self._share = share
        self._config = config
        self._on_change = on_change
        self._ctx = multiprocessing.get_context("spawn")
        self._wake = WakeSignal(self._ctx)
        self._stop = StopFlag(self._ctx)
        self._reports: Any = None  # a new queue per worker: a killed one may leave it broken
        self._sent: Any = None  # changes the current worker reported (it writes, we read)
        self._delivered = 0  # ... and those handed to on_change
        self._process: Any = None
        self._reader: threading.Thread | None = None
        self._stopping = threading.Event()
        self._spawning = threading.Lock()  # stop() and a restart do not interleave
        self._gate = write_gate(engine)  # PostgreSQL's is open: nothing to share or reset
        self._restart_at = 0.0
        self._restart_delay_s = restart_delay_s
        self._stable_s = stable_s
        self._started_at = 0.0
        self._failures = 0  # workers in a row that died before running `stable_s`
        self.restarts = 0  # all restarts since start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._spawn()
        self._reader = threading.Thread(target=self._read, name="clarion-worker-reports",
                                        daemon=True)
        self._reader.start()

    def _spawn(self) -> None:
        self._stop.clear()
        self._reports = self._ctx.Queue()
        self._sent = self._ctx.Value("q", 0, lock=False)
        self._delivered = 0
        process = self._ctx.Process(
            target=_worker_main, name="clarion-ingest-worker", daemon=True,
            args=(self._url, self._config, logging.getLogger("clarion").getEffectiveLevel(),
                  logs.pseudonym_key(), self._gate, self._wake, self._stop, self._reports,
                  self._sent, os.getpid(), self._journal, self._share))
        process.start()
        self._process = process  # only a started process: pid and join() are valid
        self._started_at = time.monotonic()
        logs.ingest.debug("processing worker %d of %d started (pid %d)", self._share[0] + 1,
                          self._share[1], process.pid)

    def wake(self, _ids: object = None) -> None:
        """Something was received: process it now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the worker finish the message in hand and exit; then stop reading its reports."""
        with self._spawning:  # no restart after this
            self._stopping.set()
        self._stop.set()
        self._wake.set()
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():  # its transaction rolls back; the rest waits
                logs.ingest.error("processing worker did not stop in %.0f s; terminated",
                                  timeout)
                self._process.terminate()
                self._process.join(5)
        if self._reports is not None:
            self._reports.put(None)
        if self._reader is not None:
            self._reader.join(timeout)
        if self._reports is not None:
            self._reports.close()
            self._reports.join_thread()

    def _read(self) -> None:
        while True:
            reports = self._reports
            try:
                item = reports.get(timeout=min(RESTART_DELAY_S, self._restart_delay_s))
            except queue.Empty:
                self._check_alive()
                if self._stopping.is_set() and reports is self._reports:
                    return
                continue
            if item is None:
                return
            if isinstance(item, logging.LogRecord):
                logging.getLogger(item.name).handle(item)
            else:
                if self._on_change is not None:
                    try:
                        self._on_change(item)
                    except Exception:  # a listener's failure must not stop the reports
                        logs.ingest.exception("patient-changed callback failed")
                if reports is self._reports:
                    self._delivered += 1

    def settled(self) -> bool:
        """Every change the worker reported has been handed to `on_change`."""
        return self._sent is None or self._delivered >= self._sent.value

    def _check_alive(self) -> None:
        process = self._process
        if self._stopping.is_set() or process is None or process.is_alive():
            return
        if not self._restart_at:  # back off while they keep dying (say, the store is down)
            ran = time.monotonic() - self._started_at
            self._failures = 1 if ran >= self._stable_s else self._failures + 1
            delay = min(MAX_RESTART_DELAY_S, self._restart_delay_s * 2 ** (self._failures - 1))
            self._restart_at = time.monotonic() + delay
            logs.ingest.error("processing worker exited unexpectedly (exit code %s) after "
                              "%.0f s; starting another in %.1f s", process.exitcode, ran, delay)
        if time.monotonic() >= self._restart_at:
            with self._spawning:
                if self._stopping.is_set():
                    return
                self._restart_at = 0.0
                self._gate.reset()
                self.restarts += 1
                self._spawn()


class WorkerPool:
    """`count` worker processes, each taking its share of the inbox's shards (one
    patient's messages are one worker's, in order); the same start/wake/stop as
    `Processor`. Each worker restarts on its own should it die."""

    def __init__(self, engine: Engine, config: IngestConfig, count: int,
                 on_change: Callable[[PatientChanged], None] | None = None, *,
                 journal: bool = False) -> None:
        self.workers = [WorkerProcess(engine, config, on_change, journal=journal,
                                      share=(index, count)) for index in range(count)]

    @property
    def restarts(self) -> int:
        return sum(worker.restarts for worker in self.workers)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def wake(self, _ids: object = None) -> None:
        for worker in self.workers:
            worker.wake()

    def stop(self, timeout: float = 30.0) -> None:
        for worker in self.workers:
            worker.stop(timeout)

    def settled(self) -> bool:
        return all(worker.settled() for worker in self.workers)
