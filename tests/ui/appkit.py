"""The desktop app's pieces wired as `ui.app.run_app` wires them — listener, store, fast
lane, processing worker, ONNX Runtime, the main window with its banner queue — for the
UI tests and the programs they run (the soak, the real-display screenshots)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.clinic.service import ClinicService
from app.config import Config
from app.ingest.service import IngestService
from app.store.db import open_store
from tests.app.helpers import reference_clinic
from ui.bridge import Bridge
from ui.main_window import MainWindow


def throwaway_config(folder: Path) -> Config:
    """A profile in `folder`: SQLite store, an ephemeral port, feed times in UTC, routed
    to unit ER; logs only errors, pseudonyms keyed for this profile."""
    from app import logs

    logs.setup_logging("ERROR", None)
    logs.load_pseudonym_key(folder)
    config = Config()
    config.paths.data_dir = str(folder)
    config.database.url = f"sqlite:///{folder / 'clarion.db'}"
    config.listener.port = 0
    config.ingest.feed_timezone = "UTC"
    config.workstation.locations = ["ER"]
    return config


@contextmanager
def desktop_app(config: Config) -> Iterator[tuple[ClinicService, IngestService, MainWindow,
                                                  int]]:
    """(clinic, ingest service, main window, listener port) on `config`'s store; all of
    it stopped, and the adoption log written out, on exit."""
    engine = open_store(config.database_url)
    clinic = reference_clinic(config, engine)
    bridge = Bridge()
    clinic.on_alert.append(bridge.alert.emit)
    clinic.on_open_changed.append(bridge.open_patients.emit)
    service = IngestService(config, engine, on_change=clinic.on_patient_changed,
                            wants_now=clinic.wants_now)
    server = service.start_in_thread()
    window = MainWindow(clinic, bridge, f"127.0.0.1:{server.bound_port}")
    try:
        yield clinic, service, window, server.bound_port
    finally:
        window.queue.clear()
        window.close()
        service.stop()
        clinic.close()
        engine.dispose()
