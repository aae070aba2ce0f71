"""Test helpers: a running ingest service on a real socket, and waiting for processing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

from app.clinic.service import ClinicService
from app.config import Config
from app.ingest.processor import PatientChanged, unprocessed
from app.ingest.service import IngestService
from app.store.db import open_store
from integrations.hl7.receipt import Assessment


def reference_clinic(config: Config, engine: Engine) -> ClinicService:
    """The clinic service on the T2D model's FP32 ONNX Runtime reference engine (what
    engine selection would choose on a machine without a GPU, without the gate's cost)."""
    from engines.card import load_card
    from engines.onnxruntime import OnnxRuntimeEngine
    from engines.select import Candidate, Selection

    card = load_card("t2d")
    reference = OnnxRuntimeEngine(card)
    reference.load()
    return ClinicService(config, engine, card,
                         Selection(reference, [Candidate(reference.name, True, "test")]))


@contextmanager
def running_service(config: Config, on_change: Callable[[PatientChanged], None] | None = None,
                    ) -> Iterator[tuple[IngestService, int]]:
    engine = open_store(config.database_url)
    service = IngestService(config, engine, on_change)
    server = service.start_in_thread()
    try:
        yield service, server.bound_port
    finally:
        service.stop()
        engine.dispose()


def wait_processed(engine: Engine, timeout: float = 20.0) -> None:
    """Wait until nothing is pending (status received) in the inbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = unprocessed(engine)
        if not pending:
            return
        time.sleep(0.05)
    raise AssertionError(f"{pending} message(s) still pending after {timeout} s")


def ack_fields(ack: bytes | str) -> dict[str, list[str]]:
    """Segments of an ACK by name → fields (MSH fields shifted so index n is MSH-n)."""
    text = ack.decode("latin-1") if isinstance(ack, bytes) else ack
    out: dict[str, list[str]] = {}
    for segment in filter(None, text.replace("\n", "\r").split("\r")):
        fields = segment.split("|")
        if fields[0] == "MSH":
            fields = ["MSH", "|", *fields[1:]]
        out.setdefault(fields[0], fields)
    return out


def store_raw(engine: Engine, *messages: str | bytes, peer: str = "test",
              keyed: bool = False) -> list[int]:
    """Put messages through receipt and the durable inbox (no socket); return inbox ids.
    `keyed`: with the patient key the listener reads at receipt (its shard follows)."""
    from app.ingest.inbox import DurableInbox
    from app.ingest.service import receipt_key
    from integrations.hl7.receipt import assess
    from integrations.hl7.routing import read_routing

    def key(assessment: Assessment) -> str:
        if not keyed or assessment.header is None:
            return ""
        return receipt_key(read_routing(assessment.header))

    inbox = DurableInbox(engine)
    inbox.start()
    try:
        futures = [inbox.submit(raw, peer, a, patient_key=key(a))
                   for raw, a in ((raw, assess(raw)) for raw in
                                  (m.encode() if isinstance(m, str) else m for m in messages))]
        return [f.result(30).message_id for f in futures]
    finally:
        inbox.stop()


def hl7_message(*segments: str) -> str:
    return "\r".join(segments) + "\r"


def hba1c_result(control_id: str, mrn: str = "M1", value: str = "6.1") -> bytes:
    """One ORU^R01 with a single HbA1c result, as raw bytes (the listener and inbox tests)."""
    return hl7_message(
        f"MSH|^~\\&|LAB|HOSP|CLARION|WS|20260105080000||ORU^R01|{control_id}|P|2.5",
        f"PID|1||{mrn}^^^HOSP^MR||Quixote^Alonso", f"OBR|1||O-{control_id}|X",
        f"OBX|1|NM|4548-4^HbA1c^LN||{value}|%|||||F").encode()
