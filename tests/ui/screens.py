"""Render what a doctor sees on a real display, and measure it: run as a program.

    QT_QPA_PLATFORM=xcb DISPLAY=:N python -m tests.ui.screens OUT_DIR

It starts the real app pieces (listener, SQLite store, fast lane, ONNX Runtime, the main
window, the banner and its queue) on a throwaway profile, routes three synthetic patients
to unit ER by ADT (each raising an alert: one on screen, two queued), selects a patient,
and writes PNGs of the whole screen, the main window and the banner to OUT_DIR, with
`checks.json`: geometry a person would notice (overlapping banners, cut text, lists
behind scroll bars). tests/ui/test_real_display.py runs it under Xvfb; with
CLARION_WRITE_SCREENSHOTS=1 that test also copies the PNGs to docs/ for the README.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def main(out: Path) -> int:
    from tests.ui.appkit import desktop_app, throwaway_config
    from tests.ui.test_app_end_to_end import adt, history, oru, send
    from ui.banner import Banner
    from ui.qt import QApplication, QGuiApplication

    app = QApplication([])
    config = throwaway_config(Path(tempfile.mkdtemp()))
    config.workstation.clinician = "dr.demo"
    with desktop_app(config) as (clinic, service, window, port):
        window.show()

        def pump(seconds: float, until: Any = None) -> None:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not (until and until()):
                app.processEvents()
                time.sleep(0.01)

        port = port
        names = ("Quixote^Alonso", "Panza^Sancho", "del Toboso^Dulcinea")  # synthetic
        for n, (mrn, name) in enumerate(zip(("SCR-1", "SCR-2", "SCR-3"), names, strict=True), 1):
            messages = [*history(mrn),
                        oru(mrn, 8, "20260301090000+0000", "8480-6^Systolic^LN||138|mm[Hg]",
                            "8462-4^Diastolic^LN||86|mm[Hg]",
                            "1558-6^Fasting glucose^LN||112|mg/dL"),
                        adt("A04", mrn, "ER", n)]
            send(port, *[m.replace("Quixote^Alonso", name) for m in messages])
        service.wait_settled(30)
        pump(10, lambda: len(window.queue) == 3 and window.worklist_model.rowCount() == 3)
        window.select_patient(window.queue.current.patient_id)
        pump(2, lambda: window.patient_view.summary is not None)
        pump(1.0)  # the patient view's chart and the banner painted
        screen = QGuiApplication.primaryScreen()
        out.mkdir(parents=True, exist_ok=True)
        screen.grabWindow(0).save(str(out / "screen.png"))
        window.grab().save(str(out / "main-window.png"))
        banner = window.banner
        banner.toggle_details()
        pump(0.5)
        banner.grab().save(str(out / "banner.png"))
        banners = [w for w in QApplication.topLevelWidgets() if isinstance(w, Banner)
                   and w.isVisible()]
        labels = (window.feed_label, window.engine_label)
        checks = {
            "platform": QGuiApplication.platformName(),
            "visible_banners": len(banners),
            "queued": len(window.queue),
            "queue_label": banner.queue_label.text(),
            "banner_inside_screen": screen.availableGeometry().contains(banner.frameGeometry()),
            "banner_fits": banner.fits(),
            "worklist_rows": window.worklist_model.rowCount(),
            "worklist_hscroll": window.worklist.horizontalScrollBar().isVisible(),
            "alerts_hscroll": window.alerts.horizontalScrollBar().isVisible(),
            "status_labels_fit": all(label.width() >= label.sizeHint().width() - 2
                                     for label in labels),
            "patient_view_shows": window.patient_view.summary is not None,
        }
        (out / "checks.json").write_text(json.dumps(checks, indent=1))
        return 0


def dashboard(out: Path) -> int:
    """The adoption dashboard on a generated 60-day log with a feed outage: a PNG."""
    from datetime import UTC, datetime, timedelta

    from app import logs
    from app.adoption.synthetic import write_log
    from app.config import Config
    from app.store.db import open_store
    from ui.dashboard import Dashboard
    from ui.qt import QApplication

    app = QApplication([])
    folder = Path(tempfile.mkdtemp())
    logs.load_pseudonym_key(folder)
    engine = open_store(f"sqlite:///{folder / 'log.db'}")
    today = datetime.now(UTC).date()
    outage = next(today - timedelta(days=d) for d in range(9, 16)
                  if (today - timedelta(days=d)).weekday() == 2)
    write_log(engine, today - timedelta(days=1), days=60, feed_outages=[outage])
    window = Dashboard(engine, Config(), "synthetic-data model, not for clinical use")
    window.resize(1500, 1000)
    window.show()
    deadline = time.monotonic() + 30
    while window.report is None and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    for _ in range(50):
        app.processEvents()
        time.sleep(0.01)
    out.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out / "dashboard.png"))
    (out / "dashboard.json").write_text(json.dumps({
        "platform": platform_name(), "alerts": window.report.overall.alerts
        if window.report else 0, "anomalies": [a.day.isoformat() for a in
                                               (window.report.anomalies if window.report
                                                else [])]}))
    window.close()
    engine.dispose()
    return 0


def platform_name() -> str:
    from ui.qt import QGuiApplication

    return str(QGuiApplication.platformName())


if __name__ == "__main__":
    if sys.argv[1] == "--dashboard":
        sys.exit(dashboard(Path(sys.argv[2])))
    sys.exit(main(Path(sys.argv[1])))
