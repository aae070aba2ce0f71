"""The change journal's doorbell: receiver commit → workstation follower, on PostgreSQL.
A table, not a test.

    .venv/bin/python bench/journal.py [--postgres URL] [--commits 1000] [--rate 200]

A writer commits one journal row per transaction (as the receiver does per processed
message), paced at --rate; a `JournalFollower` (app/ingest/journal.py) on its own
connection LISTENs, wakes on the trigger's NOTIFY and reads the row. Latency is from the
writer's commit returning to the follower's hand-over, in the same process (one
monotonic clock). A fresh schema; the server is the real one (CLARION_TEST_POSTGRES_URL
by default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.adoption.stats import percentile  # noqa: E402
from app.ingest.journal import JournalFollower  # noqa: E402
from app.store.db import open_store  # noqa: E402
from app.store.models import Patient, PatientChangeRecord, table_of  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default=os.environ.get("CLARION_TEST_POSTGRES_URL"))
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0)
    args = parser.parse_args()
    if not args.postgres:
        sys.exit("bench/journal.py: give --postgres URL (or set CLARION_TEST_POSTGRES_URL)")
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.postgres)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(args.postgres).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        engine = open_store(url.render_as_string(hide_password=False))
        now = datetime.now(UTC)
        with engine.begin() as conn:
            patient = conn.execute(insert(table_of(Patient)).returning(table_of(Patient).c.id), {
                "family_name": "SYNTHETIC", "given_name": "Bench", "sex": "F", "race": "",
                "ethnicity": "", "deceased": False, "created_at": now, "updated_at": now,
            }).scalar_one()
        committed: dict[int, float] = {}
        delivered: dict[int, float] = {}
        follower = JournalFollower(engine, lambda change: delivered.setdefault(
            change.message_id, time.perf_counter()), poll_s=5.0)
        follower.start()
        time.sleep(0.5)  # LISTEN in place
        changes = table_of(PatientChangeRecord)
        interval = 1.0 / args.rate
        next_at = time.perf_counter()
        for n in range(args.commits):
            stamp = datetime.now(UTC)
            with engine.begin() as conn:
                conn.execute(insert(changes), {
                    "patient_id": patient, "message_id": n, "message_type": "ORU",
                    "trigger": "R01", "loincs": "4548-4", "location": "", "providers": "",
                    "received_at": stamp, "processed_at": stamp})
            committed[n] = time.perf_counter()
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
        deadline = time.monotonic() + 10
        while len(delivered) < args.commits and time.monotonic() < deadline:
            time.sleep(0.01)
        follower.stop()
        engine.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    ms = [(delivered[n] - committed[n]) * 1000 for n in committed if n in delivered]
    print(f"\nChange journal, commit → follower, PostgreSQL, {args.commits} commits at "
          f"{args.rate:g}/s, 2 cores\n")
    print("| delivered | p50 ms | p99 ms | max ms |\n|---:|---:|---:|---:|")
    print(f"| {len(ms)} of {args.commits} | {statistics.median(ms):.2f} | "
          f"{percentile(ms, 99):.2f} | {max(ms):.2f} |")
    return 0 if len(ms) == args.commits else 1


if __name__ == "__main__":
    sys.exit(main())
