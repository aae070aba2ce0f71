"""Adoption figures and the dashboard over a large log: 1 million events, SQLite and
PostgreSQL. A table, not a test.

    .venv/bin/python bench/adoption.py [--events 1000000] [--postgres URL] [--runs 5]

Writes a synthetic log (app/adoption/synthetic.py: a year, enough clinicians for the
event count) into a fresh SQLite file and, with --postgres (or
CLARION_TEST_POSTGRES_URL), a fresh schema, then times: the figures for the last 30 and
365 days (`clarion stats`: the per-alert summary read and counted), the whole report
(every breakdown, the latency buckets, the anomaly check), and the dashboard (offscreen:
the window built, the report read on its thread, the charts drawn). Goal: figures under
1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import logs  # noqa: E402
from app.adoption.figures import Filters  # noqa: E402
from app.adoption.report import build  # noqa: E402
from app.adoption.stats import adoption, percentile  # noqa: E402
from app.adoption.synthetic import write_log  # noqa: E402
from app.store.db import open_store  # noqa: E402
from app.store.models import AlertEvent  # noqa: E402


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm: the first query plans, the first imports
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), percentile(times, 99)


def bench(name: str, url: str, events: int, runs: int) -> list[str]:
    engine = open_store(url)
    end = datetime.now(UTC).date() - timedelta(days=1)
    per_clinician_day = 5.0
    clinicians = max(2, round(events / (260 * per_clinician_day * 5.44)))  # events/alert
    started = time.perf_counter()
    log = write_log(engine, end, days=365, clinicians=clinicians, workstations=40,
                    per_clinician_day=per_clinician_day, seed=3)
    wrote = time.perf_counter() - started
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(AlertEvent))
    rows = [f"| {name} | writing the log | {n:,} events, {log.alerts:,} alerts | "
            f"{wrote:.1f} s | |"]
    for days in (30, 365):
        since = Filters(since=datetime.now(UTC) - timedelta(days=days))
        p50, p99 = timed(lambda s=since: adoption(engine, s.since, s), runs)
        rows.append(f"| {name} | figures, last {days} days | | {p50:.0f} ms | {p99:.0f} ms |")
    since = Filters(since=datetime.now(UTC) - timedelta(days=30))
    p50, p99 = timed(lambda: build(engine, since), runs)
    rows.append(f"| {name} | whole report (breakdowns, buckets, anomalies), 30 days | | "
                f"{p50:.0f} ms | {p99:.0f} ms |")
    from ui.dashboard import Dashboard
    from ui.qt import QApplication

    app = QApplication.instance() or QApplication([])
    from app.config import Config

    def dashboard() -> None:
        window = Dashboard(engine, Config())
        while window.report is None:
            app.processEvents()
            time.sleep(0.001)
        window.grab()  # painted, charts included
        window.close()
        window.deleteLater()
        app.processEvents()

    p50, p99 = timed(dashboard, max(2, runs // 2))
    rows.append(f"| {name} | dashboard opened, read and drawn, 30 days | | {p50:.0f} ms | "
                f"{p99:.0f} ms |")
    engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get("CLARION_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    logs.load_pseudonym_key(folder)
    rows = bench("SQLite", f"sqlite:///{folder / 'adoption.db'}", args.events, args.runs)
    if args.postgres:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.postgres)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(args.postgres).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            rows += bench("PostgreSQL", url.render_as_string(hide_password=False), args.events,
                          args.runs)
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    print(f"\nAdoption figures over a large log, {os.cpu_count()} cores\n")
    print("| store | what | size | p50 | p99 |\n|---|---|---|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
