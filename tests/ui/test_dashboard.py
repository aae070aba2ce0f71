"""The adoption dashboard with pytest-qt, on a generated log: filters change the tables
and the charts, the anomaly days are listed and shaded, the PDF exports; and the
committee report and CSV exports from the command line, headless."""

from __future__ import annotations

import csv
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.adoption.report import safe_cell
from app.adoption.synthetic import write_log
from app.cli import main
from app.config import Config
from app.store.db import open_store
from ui.dashboard import ALL, Dashboard


def feed_down(today: date) -> date:
    """A recent Wednesday, the day the synthetic feed went down."""
    return next(today - timedelta(days=d) for d in range(9, 16)
                if (today - timedelta(days=d)).weekday() == 2)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    """A 60-day log up to yesterday. Today is read here, when the test starts, not when
    the module is imported: a suite that ran across midnight saw the new yesterday
    without messages, rightly, as a second anomaly."""
    today = datetime.now(UTC).date()
    down = feed_down(today)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = open_store(url)
    write_log(engine, today - timedelta(days=1), days=60, feed_outages=[down])
    yield engine, url, down
    engine.dispose()


def test_filters_change_tables_and_charts(store: Any, qtbot: Any, tmp_path: Path) -> None:
    engine, _, down = store
    window = Dashboard(engine, Config(), "synthetic-data model")
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.report is not None, timeout=20000)
    report = window.report
    assert report is not None and report.overall.alerts > 300
    assert window.breakdown.rowCount() == 4  # four clinicians, as pseudonyms
    assert all(row[0].startswith("p:") for row in window.breakdown.rows)
    tiles = [t.accessibleName() for t in window.tile_labels]
    assert tiles[0] == f"Alerts shown: {report.overall.displayed}"
    assert [a.day for a in report.anomalies] == [down]
    assert down.isoformat() in window.anomalies.text()
    shaded = [p for p in window.trend_canvas.figure.axes[0].patches  # type: ignore[union-attr]
              if p.get_facecolor()[:3] != (0.5647058823529412, 0.6431372549019608,
                                           0.6823529411764706)]
    assert shaded  # the anomaly day drawn behind the bars
    # A filter: one clinician → fewer alerts, one row in the breakdown, new charts.
    before_canvas = window.trend_canvas
    box = window.filters["clinician"]
    box.setCurrentIndex(1)
    qtbot.waitUntil(lambda: window.report is not report, timeout=20000)
    assert window.report.overall.alerts < report.overall.alerts / 2
    assert window.breakdown.rowCount() == 1
    assert window.trend_canvas is not before_canvas
    window.by.setCurrentText("tier")
    assert sorted(r[0] for r in window.breakdown.rows) == ["elevated", "high"]
    box.setCurrentText(ALL)
    qtbot.waitUntil(lambda: window.report.overall.alerts == report.overall.alerts,
                    timeout=20000)
    written = window.export_pdf(tmp_path / "from-dashboard.pdf")
    assert written is not None and written.read_bytes()[:5] == b"%PDF-"
    window.close()


def test_report_pdf_and_csv_headless(store: Any, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    _, url, down = store
    pdf, folder = tmp_path / "report.pdf", tmp_path / "csv"
    assert main(["report", "--since", "60d", "--pdf", str(pdf), "--csv", str(folder),
                 "--db", url]) == 0
    assert "1 anomalies" in capsys.readouterr().out
    assert pdf.read_bytes()[:5] == b"%PDF-"
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed; .ci/run installs it")
    pages = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout
    assert int(next(line.split()[-1] for line in pages.splitlines()
                    if line.startswith("Pages:"))) >= 8
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                          text=True).stdout
    for words in ("Clarion — adoption report", "Alerts shown", "Follow-through",
                  "check the feed", down.isoformat(), "Viewed, by latency",
                  "Not for clinical use", "By clinician", "Dismissal comments to review"):
        assert words in text, words
    with (folder / "alert_events.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["event"] for r in rows} >= {"generated", "displayed", "dismissed"}
    assert all(r["clinician"].startswith("p:") and r["patient"].startswith("p:")
               for r in rows)
    assert "SYNTHETIC" not in (folder / "alert_events.csv").read_text()  # no names
    comments = [r["comment"] for r in rows if r["comment"]]
    assert any(c.startswith("'=") for c in comments)  # =HYPERLINK… is text, not a formula
    assert not any(c[0] in "=+-@" for c in comments)
    with (folder / "daily.csv").open() as f:
        daily = list(csv.DictReader(f))
    assert daily and down.isoformat() not in {r["day"] for r in daily}


def test_stats_by_and_anomalies(store: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, url, down = store
    assert main(["stats", "--since", "60d", "--by", "clinician", "--db", url]) == 0
    out = capsys.readouterr().out
    assert out.count("p:") == 4 and "dr0" not in out
    assert main(["stats", "--since", "60d", "--by", "clinician", "--names", "--db", url]) == 0
    assert "dr0" in capsys.readouterr().out
    assert main(["stats", "--since", "60d", "--db", url]) == 0
    out = capsys.readouterr().out
    assert f"ANOMALY {down.isoformat()}" in out and "viewed by latency" in out


def test_formula_injection_guard() -> None:
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=x"):
        assert safe_cell(text).startswith("'")
    assert safe_cell("seen last week") == "seen last week"
