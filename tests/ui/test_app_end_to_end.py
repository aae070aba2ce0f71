"""End to end over a real socket: feed → store → score → policy → banner → log.

Real listener, real SQLite store, real ONNX Runtime, real Qt widgets (offscreen).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.adoption.log import DismissReason
from app.clinic.service import ClinicService
from app.config import Config
from app.store.models import AlertEvent
from integrations.mllp import MllpClient
from tests.app.helpers import ack_fields, hl7_message
from tests.ui.conftest import running_app
from ui.main_window import MainWindow

PID = "PID|1||{mrn}^^^H^MR||Quixote^Alonso||19620101|F||2029-7^Asian Indian^CDCREC"


def send(port: int, *messages: str) -> None:
    with MllpClient("127.0.0.1", port) as client:
        for message in messages:
            assert ack_fields(client.send(message.encode()))["MSA"][1] == "AA"


def adt(trigger: str, mrn: str, unit: str, n: int) -> str:
    return hl7_message(f"MSH|^~\\&|ADT|H|C|W|20260601080000||ADT^{trigger}|{mrn}-{trigger}-{n}"
                       "|P|2.5", PID.format(mrn=mrn),
                       f"PV1|1|E|{unit}^1^1^H||||D01^Doc||||||||||||V-{mrn}-{n}")


def oru(mrn: str, n: int, when: str, *obx: str) -> str:
    return hl7_message(f"MSH|^~\\&|LAB|H|C|W|{when}||ORU^R01|{mrn}-R{n}|P|2.5",
                       PID.format(mrn=mrn), f"OBR|1||{mrn}-O{n}|X|||{when}",
                       *[f"OBX|{i}|NM|{o}|||||F|||{when}"
                         for i, o in enumerate(obx, 1)])


def history(mrn: str) -> list[str]:
    """Prediabetes, family history, hypertension; HbA1c 5.9 → 6.2, both over 90 days ago."""
    return [
        hl7_message(f"MSH|^~\\&|ADT|H|C|W|20240101||ADT^A08|{mrn}-DX|P|2.5", PID.format(mrn=mrn),
                    "PV1|1|O|CLINIC", "DG1|1||R73.03^Prediabetes^I10||20240101",
                    "DG1|2||Z83.3^Family history of diabetes^I10||20240101",
                    "DG1|3||I10^Hypertension^I10||20240101"),
        oru(mrn, 1, "20250501090000+0000", "4548-4^HbA1c^LN||5.9|%"),
        oru(mrn, 2, "20260120090000+0000", "4548-4^HbA1c^LN||6.2|%", "39156-5^BMI^LN||34|kg/m2"),
    ]


def events(clinic: ClinicService, alert_id: str | None = None) -> list[tuple[str, str]]:
    clinic.log.flush()  # what the window recorded goes through the log's writer thread
    with Session(clinic.engine) as session:
        query = select(AlertEvent).order_by(AlertEvent.id)
        if alert_id:
            query = query.where(AlertEvent.alert_id == alert_id)
        return [(e.event, e.reason) for e in session.scalars(query)]


def test_result_for_open_patient_raises_a_banner_and_every_step_is_logged(
        running: tuple[ClinicService, MainWindow, int], qtbot: Any) -> None:
    clinic, window, port = running
    send(port, *history("E2E1"))
    # Arrival at the ER opens the patient (ADT routing) and scores at once.
    send(port, adt("A04", "E2E1", "ER", 1))
    qtbot.waitUntil(lambda: window.worklist_model.rowCount() == 1, timeout=10000)
    qtbot.waitUntil(lambda: window.queue.current is not None, timeout=10000)
    banner = window.banner
    alert = banner.alert
    assert alert is not None
    assert "QUIXOTE, Alonso" in banner.accessibleDescription()
    # The risk on the banner is the risk the scorer gives this patient.
    expected = clinic.scorer.score(alert.patient_id, alert.generated_at).scores[0]
    assert alert.score.risk == pytest.approx(expected.risk, abs=1e-6)
    tier = next(t for t in clinic.card.tiers if t.name == alert.tier)
    assert alert.tier in ("high", "elevated")
    assert [r.key for r in alert.recommendations] == list(tier.screenings)
    assert f"{alert.score.risk:.0%}" in banner.risk_label.text()
    qtbot.waitUntil(lambda: ("displayed", "") in events(clinic, alert.alert_id))
    # Details → viewed; Dismiss with a reason → dismissed.
    banner.toggle_details()
    banner.dismiss(DismissReason.NOT_RELEVANT)
    assert [e for e, _ in events(clinic, alert.alert_id)] == [
        "generated", "displayed", "viewed", "dismissed"]
    assert events(clinic, alert.alert_id)[-1] == ("dismissed", "not-relevant")
    with Session(clinic.engine) as session:
        displayed = session.scalars(select(AlertEvent).where(
            AlertEvent.alert_id == alert.alert_id, AlertEvent.event == "displayed")).one()
        stages = json.loads(displayed.detail)["latency_ms"]
        assert {"features", "inference", "policy", "paint"} <= set(stages)
        assert displayed.clinician == "dr.test"

    # A new result without a meaningful rise: suppressed, and no second banner.
    send(port, oru("E2E1", 3, "20260601090000+0000", "2345-7^Glucose^LN||118|mg/dL"))
    qtbot.waitUntil(lambda: any(e == "suppressed" and r.startswith("recently-shown")
                                for e, r in events(clinic)), timeout=10000)
    assert len(window.queue) == 0
    # The recommended HbA1c comes back: the loop is closed in the log.
    send(port, oru("E2E1", 4, "20260601100000+0000", "4548-4^HbA1c^LN||6.3|%"))
    qtbot.waitUntil(lambda: ("screening_completed", "result received: 4548-4")
                    in events(clinic, alert.alert_id), timeout=10000)
    with Session(clinic.engine) as session:
        done = session.scalars(select(AlertEvent).where(
            AlertEvent.alert_id == alert.alert_id,
            AlertEvent.event == "screening_completed")).one()
    assert json.loads(done.detail) == {"abnormal": True}  # 6.3 % ≥ 5.7 %: for the yield


def test_already_screened_lowers_the_tier_and_drops_the_test(
        running: tuple[ClinicService, MainWindow, int], qtbot: Any) -> None:
    clinic, window, port = running
    from datetime import UTC, datetime, timedelta

    recent = (datetime.now(UTC) - timedelta(days=12)).strftime("%Y%m%d%H%M%S+0000")
    send(port, *history("E2E2"))
    send(port, oru("E2E2", 9, recent, "4548-4^HbA1c^LN||6.3|%"))
    send(port, adt("A04", "E2E2", "ER", 1))
    qtbot.waitUntil(lambda: any(e in ("generated", "suppressed") for e, _ in events(clinic)),
                    timeout=10000)
    [(event, reason)] = [x for x in events(clinic) if x[0] in ("generated", "suppressed")]
    # HbA1c resulted 12 days ago: no HbA1c recommended, tier one lower than the risk's.
    if event == "generated":
        qtbot.waitUntil(lambda: window.queue.current is not None)
        alert = window.queue.current
        assert "hba1c" not in [r.key for r in alert.recommendations]
        assert "already screened: HbA1c resulted" in reason
        window.banner.acknowledge()
    else:
        assert reason.startswith("already-screened")


def test_adt_routing_opens_and_closes(running: tuple[ClinicService, MainWindow, int],
                                      qtbot: Any) -> None:
    clinic, window, port = running
    send(port, adt("A04", "R1", "CLINIC", 1))  # not this workstation's unit
    send(port, adt("A04", "R2", "ER", 1))
    qtbot.waitUntil(lambda: window.worklist_model.rowCount() == 1, timeout=10000)
    assert [p.mrn for p in clinic.open_patients] == ["R2 (H)"]
    send(port, adt("A03", "R2", "ER", 2))
    qtbot.waitUntil(lambda: window.worklist_model.rowCount() == 0, timeout=10000)
    # By hand: search by MRN and open. (R1 went to the processing worker, R2 through the
    # fast lane: R1 may be stored after R2.)
    window.search.setText("R1")
    qtbot.waitUntil(lambda: (window.run_search(), window.results_model.rowCount())[1] == 1,
                    timeout=10000)
    window.open_result()
    qtbot.waitUntil(lambda: window.worklist_model.rowCount() == 1)
    window.queue.clear()


def test_second_start_hands_over_to_the_running_instance(
        running: tuple[ClinicService, MainWindow, int], qtbot: Any, config: Config) -> None:
    from ui.app import InstanceServer, instance_name

    clinic, window, port = running
    send(port, adt("A08", "LAUNCH1", "CLINIC", 1))
    qtbot.waitUntil(lambda: clinic.messages_seen >= 1, timeout=10000)
    requests: list[dict[str, Any]] = []

    def handle(request: dict[str, Any]) -> None:
        requests.append(request)
        clinic.open_by_identifier(request["mrn"], request.get("authority"), "launch")

    name = instance_name(config)
    server = InstanceServer(name, handle)
    code = ("import sys; from PySide6.QtCore import QCoreApplication; "
            "app = QCoreApplication([]); from ui.app import parse_open_request, send_to_running; "
            f"sys.exit(0 if send_to_running({name!r}, parse_open_request(sys.argv[1:]), 5000) "
            "else 3)")
    child = subprocess.Popen([sys.executable, "-c", code, "clarion://open?mrn=LAUNCH1&authority=H"])
    qtbot.waitUntil(lambda: child.poll() is not None, timeout=15000)
    assert child.returncode == 0
    qtbot.waitUntil(lambda: window.worklist_model.rowCount() == 1, timeout=10000)
    assert requests == [{"mrn": "LAUNCH1", "authority": "H"}]
    assert clinic.open_patients[0].source == "launch"
    server.server.close()
    window.queue.clear()


def test_wayland_gets_an_in_window_toast(config: Config, qtbot: Any,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """On Wayland a client cannot place or raise its own window: the banner goes into the
    main window instead (and to the tray, where there is one)."""
    import ui.main_window

    monkeypatch.setattr(ui.main_window, "toast_mode", lambda: True)
    with running_app(config, qtbot) as (clinic, window, port):
        send(port, *history("WL1"))
        send(port, adt("A04", "WL1", "ER", 1))
        qtbot.waitUntil(lambda: window.queue.current is not None, timeout=10000)
        banner = window.banner
        alert = banner.alert
        assert banner.window() is window and not banner.isWindow()  # inside the main window
        banner.acknowledge()
        assert ("acknowledged", "") in events(clinic, alert.alert_id)


def test_app_without_a_display_says_what_to_do(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main([], gui=lambda *a: 0) == 2
    assert "clarion listen" in capsys.readouterr().err
