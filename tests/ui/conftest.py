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
from tests.ui.appkit import desktop_app  # noqa: E402
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
    with desktop_app(config) as (clinic, _, window, port):
        qtbot.addWidget(window)
        yield clinic, window, port


@pytest.fixture
def running(config: Config, qtbot: Any) -> Iterator[tuple[ClinicService, MainWindow, int]]:
    with running_app(config, qtbot) as app:
        yield app
