"""`clarion demo`: a throwaway profile, a real listener, a synthetic feed, real banners.

The feed: ten years of history for about 20 synthetic patients (a few at high risk),
registered at the clinic, then today's visit of each at the emergency department — which
this demo workstation is routed to, so each arrival opens the patient and scores them.
For two high-risk patients a fresh HbA1c follows: the recommended test was done, which
closes the loop in the adoption log. With `--headless` the clinician's actions are
simulated and every alert is printed with its log entries.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Config
from engines.training.cohort import SyntheticPatient, generate
from engines.training.feed import AUTHORITY, feed, mrn

DEMO_UNIT = "ER"


def demo_config(base: Config | None = None) -> Config:
    """A throwaway profile: temporary data directory, free port, routed to the ER."""
    config = (base or Config()).model_copy(deep=True)
    folder = Path(tempfile.mkdtemp(prefix="clarion-demo-"))
    config.paths.data_dir = str(folder)
    config.database.url = f"sqlite:///{folder / 'demo.db'}"
    config.listener.port = 0
    config.workstation.locations = [DEMO_UNIT]
    config.workstation.department = "Emergency (demo)"
    config.alerts.expire_after_s = 60.0
    config.alerts.max_per_hour = 30  # a newcomer should see every banner of the demo
    return config


def pick_patients(now: datetime, n: int = 20, seed: int = 7) -> list[SyntheticPatient]:
    """About `n` patients: a few with a rising HbA1c (high risk), the rest a mix.

    Their recorded history ends four months before today, so a recommended HbA1c is due
    (results within 90 days count as already screened).
    """
    last_visit = now - timedelta(days=120)
    cohort = [p for p in generate(600, seed, index_date=last_visit) if not p.prevalent]

    def latest_a1c(p: SyntheticPatient) -> float:
        values = [e.value for e in p.events if e.name == "hba1c" and e.value is not None]
        return values[-1] if values else 0.0

    high = sorted(cohort, key=latest_a1c, reverse=True)[:5]
    rest = [p for p in cohort if p not in high][: n - len(high)]
    chosen = high + rest
    order = [chosen[i] for i in (0, 5, 1, 6, 7, 2, 8, 9, 3, 10, 11, 4)] + chosen[12:]
    return order[:n]


def today_messages(patients: list[SyntheticPatient], now: datetime) -> list[list[bytes]]:
    """Per step, the next patient's arrival at the ER; for two, a fresh HbA1c one step later.

    The result comes after the doctor has seen the alert that recommended it, as in a clinic:
    sent with the arrival, it could be stored before the alert was scored.
    """
    out: list[list[bytes]] = [[] for _ in patients]
    for n, p in enumerate(patients):
        stamp = now.strftime("%Y%m%d%H%M%S+0000")
        pid = f"PID|1||{mrn(p)}^^^{AUTHORITY}^MR||Demo^Patient||{p.birth_date:%Y%m%d}|{p.sex}"
        out[n].append(("\r".join([
            f"MSH|^~\\&|SYNTH-EHR|CLARION-SYN|CLARION|WS|{stamp}||ADT^A04^ADT_A01|"
            f"DEMO-{n:03d}-A04|P|2.5.1", f"EVN|A04|{stamp}", pid,
            f"PV1|1|E|{DEMO_UNIT}^1^{n % 8 + 1}^CLARION-SYN||||D01^Doctor^Demo||||||||||||"
            f"TODAY-{n:03d}"]) + "\r").encode())
        if n in (0, 2) and n + 1 < len(patients):
            later = (now + timedelta(minutes=20)).strftime("%Y%m%d%H%M%S+0000")
            out[n + 1].append(("\r".join([
                f"MSH|^~\\&|LAB|CLARION-SYN|CLARION|WS|{later}||ORU^R01^ORU_R01|"
                f"DEMO-{n:03d}-A1C|P|2.5.1", pid, f"OBR|1||DEMO-ORD-{n}|4548-4^HbA1c^LN|||{later}",
                f"OBX|1|NM|4548-4^Hemoglobin A1c^LN||6.2|%|4.0-5.6|H|||F|||{later}"]) + "\r"
                ).encode())
    return out


# ECG strips from the public databases, sent from the ER's monitor for four of today's
# patients one step after they arrive: (step, database, record, lead, start s, what it is).
DEMO_ECGS = (
    (1, "mitdb", "201", "MLII", 5.0, "atrial fibrillation"),
    (3, "mitdb", "233", "MLII", 60.0, "frequent PVCs"),
    (4, "cinc2017-train", "A00005", None, 0.0, "atrial fibrillation (wearable)"),
    (6, "mitdb", "100", "MLII", 60.0, "sinus rhythm"),
)


def ecg_messages(patients: list[SyntheticPatient], now: datetime,
                 out: Callable[[str], None] = print) -> list[list[bytes]]:
    """Per step, the ECG strips (PCD-01 ORU^R01) the monitor sends; none, with a note,
    where the databases are not at hand (../shared/data/ecg)."""
    from engines.training import ecg_data
    from integrations.hl7.waveform import oru_waveform

    steps: list[list[bytes]] = [[] for _ in patients]
    stamp = (now + timedelta(minutes=5)).strftime("%Y%m%d%H%M%S+0000")
    used = set()
    for step, database, record, lead, start, _what in DEMO_ECGS:
        if step >= len(patients):
            continue
        try:
            folder = ecg_data.database(database)
        except ecg_data.EcgDataMissing as exc:
            out(f"no ECGs in the demo's feed: {exc}")
            return steps
        signal = ecg_data.read_record(folder, record, lead)
        a = int(start * signal.rate_hz)
        strip = signal.signal[a:a + int(30 * signal.rate_hz)]
        name = "II" if signal.lead == "MLII" else "I"  # CinC's AliveCor: a lead-I recording
        steps[step].append(oru_waveform(
            mrn(patients[step]), f"DEMO-{step:03d}-ECG", [(name, strip)], signal.rate_hz,
            stamp, sender="ER-MONITOR", location=f"{DEMO_UNIT}^1^{step % 8 + 1}").replace(
            f"PID|1||{mrn(patients[step])}^^^HOSP^MR",
            f"PID|1||{mrn(patients[step])}^^^{AUTHORITY}^MR").encode())
        used.add(database)
    for database in sorted(used):
        out(f"ECG strips from the {ecg_data.ATTRIBUTION[database]}")
    return steps


def replay(port: int, history: list[bytes], today: list[list[bytes]],
           pause_s: float = 1.5, stop: threading.Event | None = None,
           on_step: Callable[[int], None] | None = None,
           settled: Callable[[], object] | None = None) -> None:
    """Send the history, then open the patients in turn (over a real MLLP connection).

    `settled` waits until the history is processed: it is years old, so it is in the store
    before today's first patient arrives, not a backlog today's messages queue behind.
    """
    from integrations.mllp import MllpClient

    with MllpClient("127.0.0.1", port) as client:
        for message in history:
            client.send(message)
        if settled is not None:
            settled()
        for n, messages in enumerate(today):
            if stop is not None and stop.is_set():
                return
            for message in messages:
                client.send(message)
            if on_step is not None:
                on_step(n)
            time.sleep(pause_s)


def run_headless(config: Config, pause_s: float = 0.2, out: Callable[[str], None] = print
                 ) -> dict[str, object]:
    """The whole demo without a screen. Returns the adoption figures at the end."""
    from app.adoption.log import AlertEventType, DismissReason
    from app.adoption.stats import adoption, render
    from app.clinic.alerts import Alert
    from app.clinic.service import ClinicService
    from app.ecg.analysis import load_ecg
    from app.ingest.service import IngestService
    from app.store.db import open_store
    from app.store.models import AlertEvent
    from engines.card import load_card
    from engines.select import select_engine

    now = datetime.now(UTC).replace(microsecond=0)
    engine = open_store(config.database_url)
    card = load_card("t2d")
    selection = select_engine(card, config.data_dir / "engines")
    clinic = ClinicService(config, engine, card, selection,
                           ecg=load_ecg(config.data_dir / "engines"))
    alerts: list[Alert] = []

    def shown(alert: Alert) -> None:
        # No screen: the alert reaching the demo stands for the banner painting, so its
        # latency is not the demo's own polling and printing (bench/banner.py times the
        # real paint).
        clinic.record(alert, AlertEventType.DISPLAYED,
                      detail={"latency_ms": alert.latency_at(datetime.now(UTC))})
        alerts.append(alert)

    clinic.on_alert.append(shown)
    service = IngestService(config, engine, on_change=clinic.on_patient_changed,
                            wants_now=clinic.wants_now)
    server = service.start_in_thread()
    out(f"clarion demo (headless): listening on 127.0.0.1:{server.bound_port}, engine "
        f"{selection.engine.name}, model {card.id} {card.version}")
    patients = pick_patients(now)
    history = feed(patients)
    out(f"replaying {len(history)} history messages for {len(patients)} synthetic patients")
    handled = 0

    def act(step: int) -> None:
        nonlocal handled
        service.wait_settled()  # every change processed and seen by the clinic
        while handled < len(alerts):
            alert = alerts[handled]
            handled += 1
            out("")
            out(f"ALERT {alert.headline}")
            if alert.score.finding and alert.score.risk is not None:
                out(f"  finding: {alert.score.finding}")
            out(f"  patient {alert.patient_name}, born {alert.birth_date}, MRN {alert.mrn}")
            out("  order: " + (", ".join(r.name for r in alert.recommendations) or "nothing"))
            for factor in alert.score.factors:
                out(f"  because: {factor.words}")
            clinic.record(alert, AlertEventType.VIEWED, reason="details")
            if handled % 2:
                clinic.record(alert, AlertEventType.ACKNOWLEDGED)
            else:
                clinic.record(alert, AlertEventType.DISMISSED,
                              reason=DismissReason.ALREADY_SCREENED.value)
            clinic.log.flush()
            with Session(engine) as session:
                for row in session.scalars(select(AlertEvent).where(
                        AlertEvent.alert_id == alert.alert_id).order_by(AlertEvent.id)):
                    out(f"  log: {row.at:%H:%M:%S} {row.event:20} {row.reason}")

    today = today_messages(patients, now)
    for step, messages in enumerate(ecg_messages(patients, now, out)):
        today[step].extend(messages)
    try:
        replay(server.bound_port, history, today, pause_s,
               on_step=act, settled=service.wait_settled)
        act(-1)
        clinic.log.flush()
        with Session(engine) as session:
            for row in session.scalars(select(AlertEvent).where(
                    AlertEvent.event.in_(["suppressed", "screening_completed"]))
                    .order_by(AlertEvent.id)):
                out(f"log: {row.event} patient {row.patient_id}: {row.reason}")
        figures = adoption(engine, now - timedelta(hours=1))
        out("")
        out(render(figures))
        out(json.dumps({"alerts": figures["alerts"], "suppressed": figures["suppressed"]}))
        return figures
    finally:
        service.stop()
        clinic.close()
        engine.dispose()

