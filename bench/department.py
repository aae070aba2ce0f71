"""A department's latency: the receiver's ACK → the banner at the workstation, in real
processes on PostgreSQL. A table, not a test.

    .venv/bin/python bench/department.py [--postgres URL] [--results 200] [--rate 5]
                                         [--background 0]

`clarion listen` (the receiver) and `clarion workstation` (a department workstation
without a screen, on its own database role with row-level security) run as in a
department; this program is the interface engine. A patient with a raised risk is open
at the workstation; each ORU^R01 for them (one HbA1c) is sent over MLLP, and the time
from its ACK arriving here to the workstation printing the banner's line is taken on
this program's clock (the workstation's stdout is a pipe to it). `--background N` also
sends N other patients' ORU^R01 per second on a second connection (another unit's
patients: the receiver's load). Prints p50/p95/p99/max (ms). The server is the real one
(CLARION_TEST_POSTGRES_URL by default); a fresh schema and roles, dropped after.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.adoption.stats import percentile  # noqa: E402
from app.cli import main as clarion  # noqa: E402
from app.store.db import open_store  # noqa: E402
from integrations.mllp import MllpClient  # noqa: E402

STAMP = "20261201080000+0000"


def message(*segments: str) -> bytes:
    return ("\r".join(segments) + "\r").encode()


def pid(mrn: str) -> str:
    return f"PID|1||{mrn}^^^H^MR||Bench^{mrn}||19600101|F||2029-7^Asian Indian^CDCREC"


def result(mrn: str, control: str) -> bytes:
    return message(f"MSH|^~\\&|LAB|H|C|W|{STAMP}||ORU^R01|{control}|P|2.5", pid(mrn),
                   f"OBR|1||O{control}|X|||{STAMP}",
                   f"OBX|1|NM|4548-4^HbA1c^LN||6.3|%|||||F|||{STAMP}")


def start(*args: str) -> tuple[subprocess.Popen[str], queue.Queue[tuple[float, str]]]:
    """A `clarion` process; its stdout lines with the time each arrived here."""
    process = subprocess.Popen([sys.executable, "-m", "app.cli", *args], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[tuple[float, str]] = queue.Queue()

    def read(stream, tag: str) -> None:  # noqa: ANN001
        for line in stream:
            lines.put((time.perf_counter(), f"{tag}{line.rstrip()}"))
    threading.Thread(target=read, args=(process.stdout, ""), daemon=True).start()
    threading.Thread(target=read, args=(process.stderr, "ERR "), daemon=True).start()
    return process, lines


def wait_line(lines: queue.Queue[tuple[float, str]], test, timeout: float = 120.0  # noqa: ANN001
              ) -> tuple[float, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            at, line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if test(line):
            return at, line
    raise TimeoutError("no line came")


def config(folder: Path, name: str, url: str, extra: str) -> str:
    path = folder / f"{name}.toml"
    path.write_text(f'[database]\nurl = "{url}"\n\n[paths]\ndata_dir = "{folder / name}"\n\n'
                    f'[ingest]\nfeed_timezone = "UTC"\n\n[alerts]\nsuppress_days = 0\n'
                    f"max_per_hour = 100000\n\n{extra}\n")
    return str(path)


def run(url: str, args: argparse.Namespace, folder: Path, role_url: str) -> list[float]:
    receiver, r_lines = start("listen", "--config", config(
        folder, "receiver", url, '[department]\nrole = "receiver"\n\n[listener]\nport = 0'))
    workstation, w_lines = start("workstation", "--config", config(
        folder, "ws", role_url, '[department]\nrole = "workstation"\n\n[workstation]\n'
        'name = "bench-ws"\nlocations = ["CLINIC"]'))
    stop = threading.Event()
    try:
        _at, line = wait_line(r_lines, lambda x: "listening on" in x)
        port = int(line.split("listening on ")[1].split(";")[0].rsplit(":", 1)[1])
        wait_line(w_lines, lambda x: '"following"' in x)
        with MllpClient("127.0.0.1", port) as feed:
            feed.send(message(f"MSH|^~\\&|ADT|H|C|W|{STAMP}||ADT^A08|H1|P|2.5", pid("B1"),
                              "PV1|1|O|CLINIC", "DG1|1||R73.03^Prediabetes^I10||20240101",
                              "DG1|2||Z83.3^Family history^I10||20240101"))
            feed.send(message(f"MSH|^~\\&|ADT|H|C|W|{STAMP}||ADT^A04|V1|P|2.5", pid("B1"),
                              "PV1|1|O|CLINIC^1^1^H"))
            time.sleep(2.0)  # the opening's own alert, if any, comes and goes
            while not w_lines.empty():
                w_lines.get()

            def background() -> None:
                if not args.background:
                    return
                with MllpClient("127.0.0.1", port) as other:
                    n = 0
                    while not stop.is_set():
                        other.send(result(f"X{n % 500}", f"X{n}"))
                        n += 1
                        time.sleep(1.0 / args.background)
            threading.Thread(target=background, daemon=True).start()
            latencies = []
            for n in range(args.results):
                feed.send(result("B1", f"R{n}"))
                acked = time.perf_counter()
                shown, _ = wait_line(w_lines, lambda x: x.startswith('{"alert"'), 30.0)
                latencies.append((shown - acked) * 1000)
                time.sleep(1.0 / args.rate)
        return latencies
    finally:
        stop.set()
        for process in (workstation, receiver):
            process.terminate()
            process.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default=os.environ.get("CLARION_TEST_POSTGRES_URL"))
    parser.add_argument("--results", type=int, default=200)
    parser.add_argument("--rate", type=float, default=5.0, help="results per second")
    parser.add_argument("--background", type=float, default=0.0,
                        help="other patients' results per second")
    args = parser.parse_args()
    if not args.postgres:
        print("bench/department.py: give --postgres URL (or set CLARION_TEST_POSTGRES_URL)")
        return 2
    tag = uuid.uuid4().hex[:8]
    schema, group, role = f"bench_{tag}", f"clarion_ws_{tag}", f"bench_ws_{tag}"
    admin = create_engine(args.postgres)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(args.postgres).update_query_dict({"options": f"-csearch_path={schema}"})
    owner_url = url.render_as_string(hide_password=False)
    try:
        open_store(owner_url).dispose()
        for argv in (["department", "init", "--department", "CLINIC", "--locations", "CLINIC"],
                     ["department", "add-workstation", role, "--department", "CLINIC",
                      "--workstation", "bench-ws"]):
            assert clarion([*argv, "--group", group, "--db", owner_url]) == 0
        with tempfile.TemporaryDirectory() as folder:
            latencies = run(owner_url, args, Path(folder),
                            url.set(username=role).render_as_string(hide_password=False))
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              f"WHERE usename = '{role}'"))
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            for name in (role, group):
                conn.execute(text(f'DROP OWNED BY "{name}"'))
                conn.execute(text(f'DROP ROLE "{name}"'))
        admin.dispose()
    print(f"\nreceiver ACK → banner line at the workstation, {len(latencies)} results at "
          f"{args.rate:g}/s, background {args.background:g} ORU/s, {os.cpu_count()} cores "
          "(ms)")
    print("| p50 | p95 | p99 | max |")
    print("|---:|---:|---:|---:|")
    print("| " + " | ".join(f"{percentile(latencies, q):.1f}" for q in (50, 95, 99)) +
          f" | {max(latencies):.1f} |")
    print(json.dumps({"p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
