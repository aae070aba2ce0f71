"""Qt tests run offscreen; a test that leaves a visible top-level widget fails. Also the
running app (listener, store, clinic, main window) that the end-to-end tests drive."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from app.clinic.service import ClinicService  # noqa: E402
from app.config import Config  # noqa: E402
from app.ingest.service import IngestService  # noqa: E402
from app.store.db import open_store  # noqa: E402
from engines.card import load_card  # noqa: E402
from engines.onnxruntime import OnnxRuntimeEngine  # noqa: E402
from engines.select import Candidate, Selection  # noqa: E402
from ui.bridge import Bridge  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402


@pytest.fixture(autouse=True)
def no_leaked_widgets(qapp: object) -> Iterator[None]:
    from ui.qt import QApplication

    before = {id(w) for w in QApplication.topLevelWidgets() if w.isVisible()}
    yield
    QApplication.processEvents()
    leaked = [w for w in QApplication.topLevelWidgets()
              if w.isVisible() and id(w) not in before]
    for widget in leaked:
        widget.close()
    assert not leaked, f"visible top-level widgets left behind: {leaked}"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The UI tests run on SQLite only (the store on PostgreSQL is tested in tests/app)."""
    return f"sqlite:///{tmp_path / 'clarion.db'}"


@contextmanager
def running_app(config: Config, qtbot: Any) -> Iterator[tuple[ClinicService, MainWindow, int]]:
    """The app as `ui.app.run_app` builds it, on the test's store and an ephemeral port,
    routed to unit ER, with the fast lane."""
    config.workstation.locations = ["ER"]
    config.workstation.clinician = "dr.test"
    engine = open_store(config.database_url)
    card = load_card("t2d")
    reference = OnnxRuntimeEngine(card)
    reference.load()
    clinic = ClinicService(config, engine, card,
                           Selection(reference, [Candidate(reference.name, True, "test")]))
    bridge = Bridge()
    clinic.on_alert.append(bridge.alert.emit)
    clinic.on_open_changed.append(bridge.open_patients.emit)
    service = IngestService(config, engine, on_change=clinic.on_patient_changed,
                            wants_now=clinic.wants_now)
    server = service.start_in_thread()
    window = MainWindow(clinic, bridge, f"127.0.0.1:{server.bound_port}")
    qtbot.addWidget(window)
    try:
        yield clinic, window, server.bound_port
    finally:
        window.queue.clear()
        service.stop()
        clinic.close()
        engine.dispose()


@pytest.fixture
def running(config: Config, qtbot: Any) -> Iterator[tuple[ClinicService, MainWindow, int]]:
    with running_app(config, qtbot) as app:
        yield app
