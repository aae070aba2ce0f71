"""The ingest service: listener → durable inbox → ACK, and the processor behind it.

`IngestService` is what both `clarion listen` (headless) and the desktop app run.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
from collections.abc import Callable

from sqlalchemy import Engine

from app import logs
from app.config import Config
from app.ingest.fastlane import FAST, FastLane
from app.ingest.inbox import DurableInbox
from app.ingest.processor import PatientChanged, Processor, unprocessed
from app.ingest.worker import WorkerPool, WorkerProcess
from app.store.models import InboxStatus, utcnow
from integrations.hl7.acks import AckError, Outcome, build_ack
from integrations.hl7.receipt import Assessment, assess
from integrations.hl7.routing import Routing, read_routing
from integrations.mllp import ListenerThread, MllpServer, ServerLimits

LISTENER_FILE = "listener.json"  # {"pid", "host", "port"} while a listener runs


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server TLS context the configuration asks for, if any."""
    listener = config.listener
    if not listener.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(listener.tls_cert, listener.tls_key or None)
    if listener.tls_client_ca:
        context.load_verify_locations(listener.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def receipt_key(routing: Routing) -> str:
    """The patient key a message is received with (the pseudonym of its first patient
    identifier, as the processor orders by): its place in the fast lane and its shard."""
    return logs.pseudonym(*routing.identifiers[0]) if routing.identifiers else ""


class IngestService:
    """Receives, stores, acknowledges and processes HL7 messages."""

    def __init__(self, config: Config, engine: Engine,
                 on_change: Callable[[PatientChanged], None] | None = None,
                 wants_now: Callable[[Routing], bool] | None = None) -> None:
        """`wants_now`: whether a message belongs in the fast lane (a patient open here,
        an ADT for this workstation's locations); asked at receipt, on the listener's
        thread, so it must be quick and never block."""
        self.config = config
        self.engine = engine
        self._wants_now = wants_now
        # A department's receiver journals every change for its workstations; nobody
        # else reads the journal, so nobody else pays for writing it.
        journal = config.department.role == "receiver"
        self.fast_lane = FastLane(engine, config.ingest, on_change, journal=journal) \
            if wants_now else None
        self.processor: Processor | WorkerProcess | WorkerPool
        postgres = engine.dialect.name == "postgresql"
        workers = config.ingest.workers or (2 if postgres else 1)
        if workers > 1 and not postgres:
            # One SQLite writer at a time, and the write gate that lets ACKs go first is
            # one lock, renewed when a worker dies: several workers would only queue.
            logs.ingest.warning("[ingest] workers = %d is for a PostgreSQL store; SQLite "
                                "processes with one worker", workers)
            workers = 1
        if config.ingest.worker != "process" or _in_memory(engine):
            self.processor = Processor(engine, config.ingest, on_change, journal=journal)
        elif workers > 1:
            self.processor = WorkerPool(engine, config.ingest, workers, on_change,
                                        journal=journal)
        else:
            self.processor = WorkerProcess(engine, config.ingest, on_change, journal=journal)
        self.inbox = DurableInbox(engine, on_committed=self.processor.wake)
        self._processing_ids = frozenset(p.upper() for p in config.listener.processing_ids)
        self._listener_thread: ListenerThread | None = None

    async def handle(self, raw: bytes, peer: str) -> bytes:
        """One frame in, one ACK out — after the message is durably in the inbox."""
        started = time.perf_counter()
        arrived = utcnow()
        assessment = assess(raw, self._processing_ids)
        duplicate = False
        key, urgent = "", False
        if assessment.used and assessment.header is not None:
            routing = read_routing(assessment.header)
            key = receipt_key(routing)
            urgent = bool(key) and self._wants_now is not None and self._wants_now(routing)
        try:
            receipt = await self.inbox.submit_async(raw, peer, assessment, arrived, key,
                                                    FAST if urgent else "")
            outcome, errors, duplicate = receipt.outcome, receipt.errors, receipt.duplicate
            if urgent and self.fast_lane is not None and not duplicate and \
                    receipt.status is InboxStatus.RECEIVED:
                self.fast_lane.submit(receipt.message_id, key)
        except Exception as exc:  # not stored: say so, so the sender keeps it and resends
            logs.listener.error("control id %r from %s NOT stored (%s); answering reject",
                                assessment.control_id, peer, type(exc).__name__)
            outcome = Outcome.REJECT
            errors = (AckError("207", "message not stored by the receiver (storage "
                                      "unavailable); resend it later"),)
        header = assessment.header
        ack = build_ack(header, outcome, errors, control_id=assessment.control_id)
        if logs.listener.isEnabledFor(logging.INFO):
            self._log_answer(assessment, ack, peer, duplicate, started)
        codec = header.charset if header else "ascii"
        return ack.encode(codec, errors="replace")

    @staticmethod
    def _log_answer(assessment: Assessment, ack: str, peer: str, duplicate: bool,
                    started: float) -> None:
        header = assessment.header
        kind = f"{header.message_type}^{header.trigger}" if header else "unreadable"
        logs.listener.info("%s %s control id %r → %s%s in %.1f ms", peer, kind,
                           assessment.control_id,
                           _msa_code(ack, header.field_sep if header else "|"),
                           " (resend)" if duplicate else "",
                           (time.perf_counter() - started) * 1000)

    def wait_settled(self, timeout: float = 30.0) -> bool:
        """Until nothing received waits for processing and every change it made has
        reached `on_change` (the demo and tests use this). False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not unprocessed(self.engine) and self.processor.settled() and \
                    (self.fast_lane is None or self.fast_lane.settled()):
                return True
            time.sleep(0.02)
        return False

    def make_server(self) -> MllpServer:
        listener = self.config.listener
        limits = ServerLimits(
            max_message_bytes=listener.max_message_bytes, idle_timeout_s=listener.idle_timeout_s,
            max_connections=listener.max_connections,
            allowed_senders=tuple(listener.allowed_senders),
            shutdown_grace_s=listener.shutdown_grace_s)
        return MllpServer(self.handle, listener.host, listener.port, limits,
                          tls_context(self.config))

    def start_workers(self) -> None:
        self.inbox.start()
        if self.fast_lane is not None:
            self.fast_lane.start()
        self.processor.start()

    def stop_workers(self) -> None:
        self.inbox.stop()
        if self.fast_lane is not None:
            self.fast_lane.stop()
        self.processor.stop()

    def start_in_thread(self) -> MllpServer:
        """Start everything, the listener on its own thread (for the desktop app)."""
        self.start_workers()
        self._listener_thread = ListenerThread(self.make_server)
        try:
            server = self._listener_thread.start()
        except BaseException:
            self.stop_workers()
            raise
        self.announce(server.bound_port)
        return server

    def stop(self) -> None:
        """Stop accepting, answer in-flight frames, commit, finish processing."""
        if self._listener_thread is not None:
            self._listener_thread.stop()
            self.withdraw()
        self.stop_workers()

    def announce(self, port: int) -> None:
        """Say in the data directory that this process listens on `port`, so that
        `clarion doctor` can tell a port held by Clarion from one held by another
        program. Best effort: a read-only data directory only loses that."""
        marker = self.config.data_dir / LISTENER_FILE
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"pid": os.getpid(), "host": self.config.listener.host,
                                          "port": port}), encoding="utf-8")
        except OSError as exc:
            logs.ingest.warning("cannot write %s: %s", marker, exc.strerror)

    def withdraw(self) -> None:
        marker = self.config.data_dir / LISTENER_FILE
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("pid") == os.getpid():
                marker.unlink()
        except (OSError, ValueError):
            pass


def _in_memory(engine: Engine) -> bool:
    """An in-memory SQLite store cannot be opened by another process."""
    return engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")


def _msa_code(ack: str, sep: str) -> str:
    for segment in ack.split("\r"):
        if segment.startswith("MSA"):
            return segment.split(sep)[1]
    return "?"
