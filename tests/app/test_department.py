"""A department on the real PostgreSQL server: one receiver (the ingest service, the only
one listening) and two workstations that do not listen but follow the store's change
journal, each routed its own unit. A patient arriving in the ER with a high risk raises
a banner at the ER's workstation and nowhere else; the clinic's workstation opens only
its own patient. (In one process; the issue's separate processes are still to come.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from app.clinic.alerts import Alert
from app.clinic.service import ClinicService
from app.config import Config
from app.ingest.journal import JournalFollower
from app.store.db import make_engine
from integrations.mllp import MllpClient
from tests.app.helpers import ack_fields, hl7_message, reference_clinic, running_service


@contextmanager
def workstation(config: Config, name: str, unit: str) -> Iterator[tuple[ClinicService,
                                                                          list[Alert]]]:
    ws = config.model_copy(deep=True)
    ws.department.role = "workstation"
    ws.workstation.name, ws.workstation.locations = name, [unit]
    engine = make_engine(ws.database_url)
    clinic = reference_clinic(ws, engine)
    alerts: list[Alert] = []
    clinic.on_alert.append(alerts.append)
    follower = JournalFollower(engine, clinic.on_patient_changed, poll_s=0.2)
    follower.start()
    try:
        yield clinic, alerts
    finally:
        follower.stop()
        clinic.close()
        engine.dispose()


def test_a_banner_at_the_workstation_the_patient_is_routed_to(config: Config) -> None:
    if not config.database_url.startswith("postgresql"):
        pytest.skip("a department's receiver and workstations share PostgreSQL")
    config.department.role = "receiver"
    config.ingest.worker = "thread"
    config.alerts.suppress_days = 0
    with running_service(config) as (_service, port), \
            workstation(config, "ws-er", "ER") as (er, er_alerts), \
            workstation(config, "ws-clinic", "CLINIC") as (clinic, clinic_alerts):
        def pid(mrn: str) -> str:
            return f"PID|1||{mrn}^^^H^MR||Dept^{mrn}||19600101|F||2029-7^Asian Indian^CDCREC"

        stamp = "20261201080000+0000"
        messages = [
            # the ER patient: a history that raises the risk, an arrival, a result
            hl7_message(f"MSH|^~\\&|ADT|H|C|W|{stamp}||ADT^A08|D1|P|2.5", pid("DEP1"),
                        "PV1|1|O|CLINIC", "DG1|1||R73.03^Prediabetes^I10||20240101",
                        "DG1|2||Z83.3^Family history^I10||20240101"),
            hl7_message(f"MSH|^~\\&|ADT|H|C|W|{stamp}||ADT^A04|D2|P|2.5", pid("DEP1"),
                        "PV1|1|E|ER^1^1^H"),
            hl7_message(f"MSH|^~\\&|LAB|H|C|W|{stamp}||ORU^R01|D3|P|2.5", pid("DEP1"),
                        f"OBR|1||O1|X|||{stamp}",
                        f"OBX|1|NM|4548-4^HbA1c^LN||6.3|%|||||F|||{stamp}"),
            # the clinic's patient: an arrival there, nothing alarming
            hl7_message(f"MSH|^~\\&|ADT|H|C|W|{stamp}||ADT^A04|D4|P|2.5", pid("DEP2"),
                        "PV1|1|O|CLINIC^2^1^H"),
        ]
        with MllpClient("127.0.0.1", port) as feed:
            for message in messages:
                assert ack_fields(feed.send(message.encode()))["MSA"][1] == "AA"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                er_alerts and len(clinic.open_patients) == 1):
            time.sleep(0.05)
        time.sleep(0.5)  # a banner that should not come would come now
        assert {p.mrn for p in er.open_patients} == {"DEP1 (H)"}
        assert {p.mrn for p in clinic.open_patients} == {"DEP2 (H)"}
        assert er_alerts and {a.mrn for a in er_alerts} == {"DEP1 (H)"}
        assert clinic_alerts == []
