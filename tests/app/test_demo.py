"""`clarion demo --headless`: the README's main job, start to finish, on a real socket."""

from __future__ import annotations

import pytest

from app.cli import main
from app.demo import demo_config, run_headless


def test_headless_demo_shows_banners_and_logs_them() -> None:
    lines: list[str] = []
    config = demo_config()
    figures = run_headless(config, pause_s=0.05, out=lines.append)
    text = "\n".join(lines)
    assert figures["alerts"] >= 3 and figures["displayed"] == figures["alerts"]
    assert figures["view_rate"] == 1.0
    assert "ALERT Type 2 diabetes risk" in text and "order: HbA1c" in text
    assert "log: " in text and "generated" in text and "dismissed" in text
    assert "below-tiers" in figures["suppressed_by_reason"]
    assert figures["follow_through_rate"] is not None and figures["follow_through_rate"] > 0


def test_demo_without_a_display_runs_headless(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main(["demo"]) == 0
    captured = capsys.readouterr()
    assert "no display found" in captured.err and "ALERT" in captured.out
