"""A department workstation without a screen (`clarion workstation`): what the desktop
app does on a workstation — follow the department's change journal, keep the patients
routed to it open, score them, decide alerts by the same policy and log them — with each
banner written to stdout as one JSON line instead of painted. For IT to check a
workstation's database role and routing from a terminal, and for the department's
end-to-end test (tests/app/test_department_processes.py).

Lines (JSON, one per line, flushed):
  {"following": true, "workstation": ..., "engine": ...}      once, when it follows
  {"change": MESSAGE_ID}                                      each change handed over
  {"alert": ALERT_ID, "mrn": ..., "model": ..., "tier": ..., "risk": ..., "headline": ...}
The alert line holds what the banner would show on screen, to the person at the
terminal; nothing of it goes to the log.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from app.adoption.log import AlertEventType
from app.clinic.alerts import Alert
from app.clinic.service import ClinicService
from app.config import Config, ConfigError
from app.ecg.analysis import load_ecg
from app.ingest.journal import JournalFollower
from app.ingest.processor import PatientChanged
from app.store.db import open_store


def run_workstation(config: Config, out: Callable[[str], None] | None = None,
                    stop: threading.Event | None = None) -> int:
    """Follow and alert until SIGINT/SIGTERM (or `stop`); 0 on a clean stop."""
    from engines.card import load_card
    from engines.select import select_engine

    if config.department.role != "workstation":
        raise ConfigError(f'[department] role = "{config.department.role}": `clarion '
                          'workstation` is a department workstation; set role = '
                          '"workstation" (and [database] url to the department\'s store)')
    write = out or (lambda line: print(line, flush=True))
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    engine = open_store(config.database_url)
    card = load_card("t2d")
    selection = select_engine(card, config.data_dir / "engines")
    clinic = ClinicService(config, engine, card, selection,
                           ecg=load_ecg(config.data_dir / "engines"))
    lock = threading.Lock()

    def shown(alert: Alert) -> None:
        clinic.record(alert, AlertEventType.DISPLAYED,
                      detail={"latency_ms": alert.latency_at(datetime.now(UTC))})
        with lock:
            write(json.dumps({"alert": alert.alert_id, "mrn": alert.mrn, "model": alert.model,
                              "tier": alert.tier, "risk": alert.score.risk,
                              "headline": alert.headline}))

    def changed(change: PatientChanged) -> None:
        with lock:
            write(json.dumps({"change": change.message_id}))
        clinic.on_patient_changed(change)

    clinic.on_alert.append(shown)
    follower = JournalFollower(engine, changed, poll_s=1.0)
    follower.start()
    write(json.dumps({"following": True, "workstation": clinic.log.workstation,
                      "engine": selection.engine.name}))
    try:
        stop.wait()
    finally:
        follower.stop()
        clinic.close()
        engine.dispose()
    return 0
