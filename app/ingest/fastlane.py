"""The fast lane: what the clinician is looking at does not wait behind bulk processing.

The processing worker (app/ingest/worker.py) runs at the lowest CPU priority, so that a burst of
history never holds up receipt; on a busy workstation that put the result a doctor was
waiting for seconds behind every other program. The listener reads each message's
routing at receipt (integrations/hl7/routing.py); a message for a patient open here, or
an ADT for one of this workstation's locations, is handed to this lane once it is durably
in the inbox. The lane processes it in this process, at normal priority, with the write
gate taken as the ACK path takes it — together with any earlier received message of the
same patient, in order — and its changes reach the clinic at once. Everything else stays
with the worker. If the lane fails, the message is still `received` and the worker
processes it: the lane only ever makes things sooner.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from sqlalchemy import Engine

from app import logs
from app.config import IngestConfig
from app.ingest.processor import PatientChanged, Processor
from app.store.db import make_engine

FAST = "fast"  # the inbox's lane for these messages (the bulk worker leaves them alone)


class FastLane:
    """A thread that processes single patients' messages on demand."""

    def __init__(self, engine: Engine, config: IngestConfig,
                 on_change: Callable[[PatientChanged], None] | None, *,
                 journal: bool = False) -> None:
        # What the lane writes can be rebuilt from the durable inbox, as the worker's can:
        # its own engine commits without waiting for the disk (the same URL, so the same
        # write gate in this process).
        self._engine = make_engine(engine.url.render_as_string(hide_password=False),
                                   derived_only=True)
        self._processor = Processor(self._engine, config, on_change, urgent=True,
                                    journal=journal)
        self._queue: queue.SimpleQueue[tuple[int, str] | None] = queue.SimpleQueue()
        self._pending = 0  # submitted and not yet done
        self._count_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.handled = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="clarion-fast-lane",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        self._engine.dispose()

    def submit(self, message_id: int, patient_key: str) -> None:
        """Process this message (and its patient's earlier ones) now."""
        with self._count_lock:
            self._pending += 1
        self._queue.put((message_id, patient_key))

    def settled(self) -> bool:
        """Nothing submitted is still waiting or in hand."""
        return self._pending == 0

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            message_id, key = item
            try:
                self.handled += self._processor.process_patient(key, message_id)
            except Exception as exc:  # the worker processes it instead; nothing is lost
                logs.ingest.warning("fast lane could not process message %d (%s); the "
                                    "processing worker will", message_id,
                                    logs.describe_error(exc))
            finally:
                with self._count_lock:
                    self._pending -= 1
