"""Frame received → banner painted, per stage, in three conditions (issue: the clinician's
window). A table, not a test.

    .venv/bin/python bench/banner.py [--alerts 2000] [--conditions idle,feed,busy]
                                     [--baseline PATH]

Everything real, as on a workstation: the MLLP listener (asyncio thread), durable inbox
(SQLite, synchronous=FULL), the processing worker (a spawned process at the lowest CPU
priority), the fast lane, features, ONNX Runtime, alert policy and adoption log, and Qt
painting the banner (offscreen). 25 patients are opened by ADT routing to unit ER; once
every opening is on screen, ORU results for them arrive one at a time, paced at 20/s, and
each is scored and shown (suppression off for the run); the banner is acknowledged as
soon as it is painted, so the next one takes its place.

Conditions:
- idle: nothing else runs;
- feed: a background feed of 100 messages/s (ADT and ORU for 500 patients not open here,
  unit CLINIC) from another process, on the same listener;
- busy: two other programs keep both cores busy (`python -c "while True: pass"`, at
  normal priority) for the whole run.

"Frame received" is the moment the listener read the frame; "painted" is the banner's
first paintEvent with that alert. Each condition runs in a fresh process.
`--baseline PATH` also runs each condition on another checkout (e.g. a `git worktree` of
the commit before the change), with this same harness, and prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PATIENTS = 25
STAGES = ("received_to_processed", "processed_to_scoring", "features", "inference", "policy",
          "log", "paint", "total")
HERE = Path(__file__).resolve().parents[1]


def pid(n: int, prefix: str = "BN") -> str:
    return (f"PID|1||{prefix}{n:03d}^^^H^MR||Bench^Pat{n}||19600101|F||"
            "2029-7^Asian Indian^CDCREC")


def background_feed(port: int, rate: float, stop: Any) -> None:
    """Another system's traffic: ADT and ORU for patients not open on this workstation."""
    from integrations.mllp import MllpClient

    interval = 1.0 / rate
    with MllpClient("127.0.0.1", port) as client:
        i = 0
        next_at = time.monotonic()
        while not stop.is_set():
            n = i % 500
            when = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
            if i % 2:
                message = (f"MSH|^~\\&|ADT|H|C|W|{when}||ADT^A08|BG{i}|P|2.5\r"
                           f"{pid(n, 'BG')}\rPV1|1|O|CLINIC^1^{n}\r")
            else:
                message = (f"MSH|^~\\&|LAB|H|C|W|{when}||ORU^R01|BGR{i}|P|2.5\r{pid(n, 'BG')}\r"
                           f"OBR|1||BGO{i}|X|||{when}\r"
                           f"OBX|1|NM|2345-7^Glucose^LN||{90 + i % 40}|mg/dL|||||F|||{when}\r"
                           f"OBX|2|NM|39156-5^BMI^LN||{24 + i % 9}|kg/m2|||||F|||{when}\r")
            client.send(message.encode())
            i += 1
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))


def spin() -> None:  # an ordinary busy program
    while True:
        pass


def run_condition(condition: str, alerts: int, rate: float) -> dict[str, Any]:
    """One condition in this process; returns the samples' summary."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app import logs
    from app.config import Config
    from app.store.db import open_store

    try:
        from app.clinic.service import ClinicService
        from app.ingest.service import IngestService
    except ImportError:  # the baseline (--baseline) may predate app/'s subpackages
        from app.service import IngestService  # type: ignore[no-redef]

        from app.clinic import ClinicService  # type: ignore[no-redef]
    from engines.card import load_card
    from engines.select import select_engine
    from integrations.mllp import MllpClient
    from ui.bridge import Bridge
    from ui.main_window import MainWindow
    from ui.qt import QApplication, QTimer

    try:  # as the app runs (the baseline, --baseline, has no such setting)
        from ui.app import tune_interpreter

        tune_interpreter()
    except ImportError:
        pass
    app = QApplication([])
    folder = Path(tempfile.mkdtemp())
    logs.setup_logging("ERROR", None)
    logs.load_pseudonym_key(folder)
    config = Config()
    config.paths.data_dir = str(folder)
    config.database.url = f"sqlite:///{folder / 'bench.db'}"
    config.listener.port = 0
    config.workstation.locations = ["ER"]
    config.alerts.suppress_days = 0  # every result for an open patient is shown
    config.alerts.max_per_hour = 10**6
    config.ingest.feed_timezone = "UTC"
    engine = open_store(config.database_url)
    card = load_card("t2d")
    selection = select_engine(card, folder / "engines", allow_tensorrt=False)
    clinic = ClinicService(config, engine, card, selection)
    bridge = Bridge()
    clinic.on_alert.append(bridge.alert.emit)
    clinic.on_open_changed.append(bridge.open_patients.emit)
    try:  # this harness also times the code before the fast lane (--baseline)
        service = IngestService(config, engine, on_change=clinic.on_patient_changed,
                                wants_now=clinic.wants_now)
    except (TypeError, AttributeError):
        service = IngestService(config, engine, on_change=clinic.on_patient_changed)
    started = time.monotonic()
    server = service.start_in_thread()
    window = MainWindow(clinic, bridge, f"127.0.0.1:{server.bound_port}")
    samples: list[dict[str, float]] = []
    openings: list[float] = []
    opened = threading.Event()

    def on_painted(alert: Any, painted_at: datetime) -> None:
        stages = alert.latency_at(painted_at)
        if "received_to_processed" not in stages:  # the openings by ADT, not measured
            openings.append(time.monotonic())
            if len(openings) >= PATIENTS:
                opened.set()
            return
        samples.append({stage: stages.get(stage, 0.0) for stage in STAGES})

    if hasattr(window, "queue"):  # one reused banner
        window.banner.painted.connect(on_painted)
        window.banner.painted.connect(lambda *_: QTimer.singleShot(0, window.banner.acknowledge))
    else:  # the code before: a banner window per alert
        original_show = window.show_alert

        def show_and_close(alert: Any) -> Any:
            banner = original_show(alert)
            banner.painted.connect(on_painted)
            banner.painted.connect(lambda *_: QTimer.singleShot(0, banner.acknowledge))
            return banner

        bridge.alert.disconnect(window.show_alert)
        bridge.alert.connect(show_and_close)

    ctx = multiprocessing.get_context("spawn")
    stop_feed = ctx.Event()
    helpers: list[Any] = []

    def sender() -> None:
        with MllpClient("127.0.0.1", server.bound_port) as client:
            for n in range(PATIENTS):
                stamp = "20240101090000+0000"
                client.send((f"MSH|^~\\&|ADT|H|C|W|{stamp}||ADT^A08|BD{n}|P|2.5\r{pid(n)}\r"
                             "PV1|1|O|CLINIC\rDG1|1||R73.03^Prediabetes^I10||20240101\r"
                             "DG1|2||Z83.3^Family history^I10||20240101\r").encode())
                client.send((f"MSH|^~\\&|ADT|H|C|W|{stamp}||ADT^A04|BA{n}|P|2.5\r{pid(n)}\r"
                             f"PV1|1|E|ER^1^{n}^H||||||||||||||||V{n}\r").encode())
            opened.wait(120)
            if condition == "feed":
                feed = ctx.Process(target=background_feed, args=(server.bound_port, 100.0,
                                                                 stop_feed), daemon=True)
                feed.start()
                helpers.append(feed)
            if condition == "busy":
                for _ in range(2):
                    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    helpers.append(busy)
            time.sleep(2.0)  # the background settles into its steady state
            interval = 1.0 / rate
            next_at = time.monotonic()
            for i in range(alerts):
                n = i % PATIENTS
                when = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
                value = 5.8 + (i % 7) * 0.1
                client.send((f"MSH|^~\\&|LAB|H|C|W|{when}||ORU^R01|BR{i}|P|2.5\r{pid(n)}\r"
                             f"OBR|1||BO{i}|X|||{when}\r"
                             f"OBX|1|NM|2345-7^Glucose^LN||{value * 20:.0f}|mg/dL|||||F|||{when}\r"
                             f"OBX|2|NM|39156-5^BMI^LN||{31 + i % 5}|kg/m2|||||F|||{when}\r"
                             ).encode())
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    deadline = time.monotonic() + alerts / rate + 300

    def check_done() -> None:
        if (not thread.is_alive() and len(samples) >= alerts) or time.monotonic() > deadline:
            app.quit()

    timer = QTimer(interval=100)
    timer.timeout.connect(check_done)
    timer.start()
    app.exec()  # the real event loop, as in the app
    timer.stop()
    stop_feed.set()
    for helper in helpers:
        if isinstance(helper, subprocess.Popen):
            helper.kill()
            helper.wait()
        else:
            helper.join(5)
    service.stop()
    getattr(clinic, "close", lambda: None)()  # the baseline (--baseline) has none
    engine.dispose()
    summary: dict[str, Any] = {"condition": condition, "alerts": len(samples),
                               "engine": selection.engine.name, "cores": os.cpu_count(),
                               "startup_s": (openings[-1] - started) if openings else None}
    for stage in STAGES:
        values = sorted(s[stage] for s in samples)
        summary[stage] = {"p50": statistics.median(values) if values else float("nan"),
                          "p99": _percentile(values, 99), "max": max(values, default=0.0)}
    return summary


def _percentile(values: list[float], q: float) -> float:
    """Nearest rank, as app.adoption.stats.percentile (kept here: the baseline may lack it)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def run_in_child(root: Path, condition: str, alerts: int, rate: float) -> dict[str, Any]:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    env = {**os.environ, "PYTHONPATH": str(root), "QT_QPA_PLATFORM": "offscreen"}
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", condition,
                    "--alerts", str(alerts), "--rate", str(rate), "--out", str(out)],
                   cwd=root, env=env, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result


def print_tables(results: dict[str, dict[str, Any]], baseline: dict[str, dict[str, Any]]
                 ) -> None:
    for condition, result in results.items():
        print(f"\n### {condition}: {result['alerts']} alerts at 20 results/s, "
              f"{result['cores']} cores, engine {result['engine']}\n")
        before = baseline.get(condition)
        head = "| stage | p50 ms | p99 ms | max ms |"
        rule = "|---|---:|---:|---:|"
        if before:
            head += " before p50 | before p99 | before max | p99 before/after |"
            rule += "---:|---:|---:|---:|"
        print(head + "\n" + rule)
        for stage in STAGES:
            row = result[stage]
            line = f"| {stage} | {row['p50']:.2f} | {row['p99']:.2f} | {row['max']:.2f} |"
            if before:
                old = before[stage]
                ratio = old["p99"] / row["p99"] if row["p99"] else float("nan")
                line += f" {old['p50']:.2f} | {old['p99']:.2f} | {old['max']:.2f} | {ratio:.1f}x |"
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=20.0, help="results per second")
    parser.add_argument("--conditions", default="idle,feed,busy")
    parser.add_argument("--baseline", type=Path, help="another checkout to time the same way")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.out.write_text(json.dumps(run_condition(args.child, args.alerts, args.rate)))
        return
    results, baseline = {}, {}
    for condition in args.conditions.split(","):
        results[condition] = run_in_child(HERE, condition, args.alerts, args.rate)
        if args.baseline:
            baseline[condition] = run_in_child(args.baseline.resolve(), condition,
                                               args.alerts, args.rate)
    print_tables(results, baseline)


if __name__ == "__main__":
    main()
