"""The fast lane: a message for a patient open here is processed at once, in this
process, ahead of the backlog — and never ahead of that patient's own earlier messages.
SQLite and the real PostgreSQL server, real sockets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Config
from app.ingest.processor import PatientChanged
from app.ingest.service import IngestService
from app.store.db import open_store
from app.store.models import InboxMessage, ObservationRecord
from integrations.hl7.header import read_header
from integrations.hl7.parse import parse_message
from integrations.hl7.routing import Routing, read_routing
from integrations.mllp import MllpClient
from tests.app.helpers import ack_fields, hl7_message


def oru(control_id: str, mrn: str, value: str) -> str:
    return hl7_message(
        f"MSH|^~\\&|LAB|HOSP|CLARION|WS|20260105080000||ORU^R01|{control_id}|P|2.5",
        f"PID|1||{mrn}^^^HOSP^MR~OTHER1^^^NHS^NH||Doe^Jane", f"OBR|1||ORD-{control_id}|X",
        f"OBX|1|NM|2345-7^Glucose^LN||{value}|mg/dL|||||F")


def test_routing_reads_what_the_parser_reads(samples: list[Path]) -> None:
    """Over the shared samples: the first patient's identifiers and the visit's location
    and providers, read at receipt without parsing, agree with the full parse."""
    compared = 0
    for path in samples:
        try:
            header = read_header(path.read_bytes())
            parsed = parse_message(header.text, header.message_type, header.trigger)
        except Exception:  # noqa: BLE001 - samples the parser refuses are not routed either
            continue
        if not parsed:
            continue
        routing = read_routing(header)
        first = parsed[0]
        assert routing.identifiers[0] == (first.patient.identifiers[0].value,
                                          first.patient.identifiers[0].authority), path.name
        if first.visit is not None:
            assert routing.location == first.visit.location, path.name
            assert set(routing.providers) <= {first.visit.attending, first.visit.admitting}
        compared += 1
    assert compared > 50


def test_routing_of_an_adt() -> None:
    text = hl7_message("MSH|^~\\&|ADT|H|C|W|20260601||ADT^A04|X1|P|2.5",
                       "PID|1||M1^^^H&1.2.3&ISO^MR~M2^^^^PI||Doe^Jane",
                       "PV1|1|E|ER^3^B^H||||D01^Who^Doc||||||||||A07^Adm")
    routing = read_routing(read_header(text.encode()))
    assert routing == Routing((("M1", "H"), ("M2", "")), "ER^3^B^H", ("D01", "A07"))
    assert routing.unit == "ER"


@pytest.fixture
def lane_only(config: Config) -> Iterator[tuple[IngestService, int, set[str]]]:
    """The listener, the inbox and the fast lane, with the bulk processor NOT running:
    whatever gets processed was processed by the fast lane."""
    hot: set[str] = set()
    changes: list[PatientChanged] = []
    engine = open_store(config.database_url)
    service = IngestService(config, engine, on_change=changes.append,
                            wants_now=lambda r: any(v in hot for v, _ in r.identifiers))
    assert service.fast_lane is not None
    service.inbox.start()
    service.fast_lane.start()
    from integrations.mllp import ListenerThread

    listener = ListenerThread(service.make_server)
    server = listener.start()
    try:
        yield service, server.bound_port, hot
    finally:
        listener.stop()
        service.inbox.stop()
        service.fast_lane.stop()
        engine.dispose()


def _send(port: int, *messages: str) -> None:
    with MllpClient("127.0.0.1", port) as client:
        for message in messages:
            assert ack_fields(client.send(message.encode()))["MSA"][1] == "AA"


def _status(service: IngestService) -> dict[str, str]:
    with Session(service.engine) as session:
        return {m.control_id: m.status for m in session.scalars(select(InboxMessage))}


def _wait(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_open_patient_goes_first_and_in_order(
        lane_only: tuple[IngestService, int, set[str]]) -> None:
    service, port, hot = lane_only
    _send(port, oru("C1", "COLD", "101"), oru("H1", "HOT", "102"))  # HOT not open yet
    time.sleep(0.3)
    assert _status(service) == {"C1": "received", "H1": "received"}  # no lane: they wait
    hot.add("HOT")  # the patient is opened on this workstation
    _send(port, oru("H2", "HOT", "103"))
    _wait(lambda: _status(service)["H2"] == "processed")
    status = _status(service)
    # The patient's earlier message went with it, first; the other patient still waits.
    assert status == {"C1": "received", "H1": "processed", "H2": "processed"}
    with Session(service.engine) as session:
        rows = session.execute(select(InboxMessage.control_id, InboxMessage.processed_at)
                               .where(InboxMessage.status == "processed")).all()
        order = [c for c, _ in sorted(rows, key=lambda r: r[1])]
        values = session.scalars(select(ObservationRecord.value_num)
                                 .order_by(ObservationRecord.id)).all()
    assert order == ["H1", "H2"] and values == [102.0, 103.0]
    assert service.fast_lane is not None and service.fast_lane.handled == 2


def test_the_worker_still_processes_everything_with_the_lane_on(config: Config) -> None:
    """The whole service (bulk worker process + fast lane): every message processed once,
    hot or not, each patient's results stored in the order sent."""
    engine = open_store(config.database_url)
    hot = {"P0", "P2"}
    service = IngestService(config, engine,
                            wants_now=lambda r: any(v in hot for v, _ in r.identifiers))
    server = service.start_in_thread()
    try:
        _send(server.bound_port, *[oru(f"M{i}", f"P{i % 4}", str(100 + i)) for i in range(80)])
        assert service.wait_settled(60)
    finally:
        service.stop()
    with Session(engine) as session:
        statuses = session.scalars(select(InboxMessage.status)).all()
        by_patient: dict[str, list[float]] = {}
        for key, value in session.execute(
                select(InboxMessage.control_id, ObservationRecord.value_num)
                .join(ObservationRecord, ObservationRecord.message_id == InboxMessage.id)
                .order_by(ObservationRecord.id)):
            by_patient.setdefault(f"P{int(key[1:]) % 4}", []).append(value)
    engine.dispose()
    assert statuses.count("processed") == 80
    for values in by_patient.values():
        assert values == sorted(values) and len(values) == 20  # in order, none twice


def test_the_worker_leaves_the_lanes_messages_alone_for_a_while(
        config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """A message handed to the fast lane is not taken by the low-priority worker (which
    would hold the write lock the lane waits for) — unless the lane has not processed it
    within the grace period, when the worker does: nothing is left behind."""
    import app.ingest.processor
    from app.ingest.fastlane import FAST
    from app.ingest.inbox import DurableInbox
    from app.ingest.processor import Processor
    from integrations.hl7.receipt import assess

    engine = open_store(config.database_url)
    inbox = DurableInbox(engine)
    inbox.start()
    raw = oru("L1", "LANE", "120").encode()
    inbox.submit(raw, "test", assess(raw), patient_key="p:lane", lane=FAST).result(30)
    raw = oru("L2", "LANE", "121").encode()  # the same patient, not in the lane: waits too
    inbox.submit(raw, "test", assess(raw), patient_key="p:lane").result(30)
    inbox.stop()
    worker = Processor(engine, config.ingest)
    assert worker.process_pending() == 0
    with Session(engine) as session:
        assert set(session.scalars(select(InboxMessage.status))) == {"received"}
    monkeypatch.setattr(app.ingest.processor, "FAST_LANE_GRACE_S", 0.0)  # the lane never came
    assert worker.process_pending() == 2
    with Session(engine) as session:
        values = session.scalars(select(ObservationRecord.value_num)
                                 .order_by(ObservationRecord.id)).all()
    engine.dispose()
    assert values == [120.0, 121.0]


def test_a_late_arrival_does_not_reopen_a_discharged_patient(config: Config) -> None:
    """Changes come from two processors, each in order but not with each other: the
    clinic applies a patient's routing by inbox order, so an A04 delivered after the
    same patient's later A03 is ignored."""
    from dataclasses import replace

    from tests.app.helpers import reference_clinic, store_raw

    config.workstation.locations = ["ER"]
    engine = open_store(config.database_url)
    adt = hl7_message("MSH|^~\\&|ADT|H|C|W|20260601||ADT^A04|LATE1|P|2.5",
                      "PID|1||LATE^^^H^MR||Doe^Jane", "PV1|1|E|ER^1^1")
    store_raw(engine, adt)
    seen: list[PatientChanged] = []
    from app.ingest.processor import Processor

    Processor(engine, config.ingest, seen.append).process_pending()
    clinic = reference_clinic(config, engine)
    arrival = seen[0]
    discharge = replace(arrival, message_id=arrival.message_id + 1, trigger="A03")
    clinic.on_patient_changed(discharge)  # the discharge reached us first ...
    clinic.on_patient_changed(arrival)  # ... and the arrival came late
    assert clinic.open_patients == []
    clinic.close()
    engine.dispose()
