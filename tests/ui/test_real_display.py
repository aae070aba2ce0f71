"""The app on a real X11 display (Xvfb, the xcb platform), as a doctor sees it: the main
window with a patient selected, one banner with two more queued, nothing overlapping or
cut. Screenshots for the README with CLARION_WRITE_SCREENSHOTS=1 (docs/*.png).

Qt in this pytest process runs offscreen, so the xcb run is a child process
(tests/ui/screens.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.ui.xvfb import xvfb_display  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_main_window_banner_and_queue_on_a_real_display(
        xvfb_display: str, tmp_path: Path) -> None:  # noqa: F811
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": xvfb_display}
    env.pop("WAYLAND_DISPLAY", None)
    done = subprocess.run([sys.executable, "-m", "tests.ui.screens", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    checks = json.loads((tmp_path / "checks.json").read_text())
    assert checks["platform"] == "xcb"
    assert checks["visible_banners"] == 1 and checks["queued"] == 3  # one window, two wait
    assert "2 more" in checks["queue_label"]
    assert checks["banner_inside_screen"] and checks["banner_fits"]
    assert checks["worklist_rows"] == 3 and checks["patient_view_shows"]
    assert not checks["worklist_hscroll"] and not checks["alerts_hscroll"]
    assert checks["status_labels_fit"]
    for name in ("screen.png", "main-window.png", "banner.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 10_000, name
        if os.environ.get("CLARION_WRITE_SCREENSHOTS"):
            DOCS.mkdir(exist_ok=True)
            shutil.copy(tmp_path / name, DOCS / name)


def test_dashboard_on_a_real_display(xvfb_display: str, tmp_path: Path) -> None:  # noqa: F811
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": xvfb_display}
    env.pop("WAYLAND_DISPLAY", None)
    done = subprocess.run([sys.executable, "-m", "tests.ui.screens", "--dashboard",
                           str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    checks = json.loads((tmp_path / "dashboard.json").read_text())
    assert checks["platform"] == "xcb" and checks["alerts"] > 300
    assert len(checks["anomalies"]) == 1
    data = (tmp_path / "dashboard.png").read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 30_000
    if os.environ.get("CLARION_WRITE_SCREENSHOTS"):
        shutil.copy(tmp_path / "dashboard.png", DOCS / "dashboard.png")
