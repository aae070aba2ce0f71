"""Screenshots of the banner and the main window for the README, rendered offscreen.

Set CLARION_WRITE_SCREENSHOTS=1 to (re)write docs/banner.png and docs/main-window.png.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from tests.ui.test_app_end_to_end import adt, history, send

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_banner_and_main_window_render(running: Any, qtbot: Any, tmp_path: Path) -> None:
    clinic, window, port = running
    send(port, *history("SHOT1"))
    send(port, adt("A04", "SHOT1", "ER", 1))
    qtbot.waitUntil(lambda: len(window.banners) == 1, timeout=10000)
    banner = window.banners[0]
    banner.toggle_details()
    window.show()
    qtbot.waitExposed(window)
    window.refresh_status()
    shots = {"banner.png": banner.grab(), "main-window.png": window.grab()}
    for name, pixmap in shots.items():
        assert pixmap.width() > 300 and pixmap.height() > 150
        assert pixmap.save(str(tmp_path / name))
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
        if os.environ.get("CLARION_WRITE_SCREENSHOTS"):
            DOCS.mkdir(exist_ok=True)
            shutil.copy(tmp_path / name, DOCS / name)
    banner.acknowledge()
    window.close()
