"""`clarion demo --headless`: the README's main job, start to finish, on a real socket."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.cli import main
from app.demo import demo_config, run_headless
from app.store.db import open_store
from app.store.models import InboxMessage


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
    # The years of history are in the store before today's first patient arrives, so no
    # alert's latency is a wait behind the history's backlog.
    engine = open_store(config.database_url)
    try:
        with Session(engine) as session:
            today = InboxMessage.control_id.like("DEMO-%")
            history_done = session.scalar(select(func.max(InboxMessage.processed_at))
                                          .where(~today))
            first_today = session.scalar(select(func.min(InboxMessage.received_at))
                                         .where(today))
    finally:
        engine.dispose()
    assert history_done is not None and first_today is not None
    assert history_done <= first_today


def test_demo_without_a_display_runs_headless(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    assert main(["demo"]) == 0
    captured = capsys.readouterr()
    assert "no display found" in captured.err and "ALERT" in captured.out
