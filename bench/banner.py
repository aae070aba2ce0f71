"""Frame received → banner painted, over 500 alerts, with the stage breakdown.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/banner.py [--alerts 500]

Everything real, as on a workstation: the MLLP listener (asyncio thread), durable inbox
(SQLite, synchronous=FULL), the processing worker (a spawned process, app/worker.py),
features, ONNX Runtime, alert policy and adoption log, and Qt painting the banner
(offscreen). 25 patients are opened by ADT routing; once all 25 are on screen, ORU results
for them arrive one at a time, paced at 20/s, and each is scored and shown (suppression
off for the run). The time from start to the last opening is printed too: it includes
spawning the worker. "Frame received" is the moment the listener read the frame;
"painted" is the banner's first paintEvent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import logs  # noqa: E402
from app.clinic import ClinicService  # noqa: E402
from app.config import Config  # noqa: E402
from app.service import IngestService  # noqa: E402
from app.stats import percentile  # noqa: E402
from app.store.db import open_store  # noqa: E402
from engines.card import load_card  # noqa: E402
from engines.select import select_engine  # noqa: E402
from integrations.mllp import MllpClient  # noqa: E402
from ui.bridge import Bridge  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402
from ui.qt import QApplication, QTimer  # noqa: E402

PATIENTS = 25
STAGES = ("received_to_processed", "processed_to_scoring", "features", "inference", "policy",
          "paint", "total")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0, help="results per second")
    args = parser.parse_args()
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
    service = IngestService(config, engine, on_change=clinic.on_patient_changed,
                            wants_now=clinic.wants_now)
    started = time.monotonic()
    server = service.start_in_thread()
    window = MainWindow(clinic, bridge, f"127.0.0.1:{server.bound_port}")
    samples: list[dict[str, float]] = []
    openings: list[float] = []  # when each opening's banner was painted
    opened = threading.Event()

    def on_painted(alert, painted_at: datetime) -> None:  # type: ignore[no-untyped-def]
        stages = alert.latency_at(painted_at)
        if "received_to_processed" not in stages:  # the openings by ADT, not measured
            openings.append(time.monotonic())
            if len(openings) >= PATIENTS:
                opened.set()
            return
        row = {stage: stages.get(stage, 0.0) for stage in STAGES}
        samples.append(row)

    original_show = window.show_alert

    def show_and_close(alert):  # type: ignore[no-untyped-def]
        banner = original_show(alert)
        banner.painted.connect(on_painted)
        banner.painted.connect(lambda *_: QTimer.singleShot(0, banner.acknowledge))
        return banner

    bridge.alert.disconnect(window.show_alert)
    bridge.alert.connect(show_and_close)

    def pid(n: int) -> str:
        return f"PID|1||BN{n:03d}^^^H^MR||Bench^Pat{n}||19600101|F||2029-7^Asian Indian^CDCREC"

    def sender() -> None:
        with MllpClient("127.0.0.1", server.bound_port) as client:
            for n in range(PATIENTS):
                stamp = "20240101090000+0000"
                client.send((f"MSH|^~\\&|ADT|H|C|W|{stamp}||ADT^A08|BD{n}|P|2.5\r{pid(n)}\r"
                             "PV1|1|O|CLINIC\rDG1|1||R73.03^Prediabetes^I10||20240101\r"
                             "DG1|2||Z83.3^Family history^I10||20240101\r").encode())
                client.send((f"MSH|^~\\&|ADT|H|C|W|{stamp}||ADT^A04|BA{n}|P|2.5\r{pid(n)}\r"
                             f"PV1|1|E|ER^1^{n}^H||||||||||||||||V{n}\r").encode())
            # The measured results start once every opening is on screen: the processing
            # worker is a spawned process that takes a second or two to come up, and
            # results sent before then would time the start, not the path.
            opened.wait(60)
            time.sleep(1.0)
            interval = 1.0 / args.rate
            for i in range(args.alerts):
                n = i % PATIENTS
                when = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
                value = 5.8 + (i % 7) * 0.1
                client.send((f"MSH|^~\\&|LAB|H|C|W|{when}||ORU^R01|BR{i}|P|2.5\r{pid(n)}\r"
                             f"OBR|1||BO{i}|X|||{when}\r"
                             f"OBX|1|NM|2345-7^Glucose^LN||{value * 20:.0f}|mg/dL|||||F|||{when}\r"
                             f"OBX|2|NM|39156-5^BMI^LN||{31 + i % 5}|kg/m2|||||F|||{when}\r"
                             ).encode())
                time.sleep(interval)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    deadline = time.monotonic() + args.alerts / args.rate + 120

    def check_done() -> None:
        if (not thread.is_alive() and len(samples) >= args.alerts) or \
                time.monotonic() > deadline:
            app.quit()

    timer = QTimer(interval=100)
    timer.timeout.connect(check_done)
    timer.start()
    app.exec()  # the real event loop, as in the app
    timer.stop()
    service.stop()
    engine.dispose()
    print(f"\nFrame received → banner painted: {len(samples)} alerts at {args.rate:g} results/s,"
          f" {os.cpu_count()} cores, engine {selection.engine.name}\n")
    if len(openings) >= PATIENTS:
        print(f"Start-up: the service started → all {PATIENTS} openings (ADT A08 + A04 each, "
              f"sent at once) painted: {openings[-1] - started:.2f} s\n")
    print("| stage | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|")
    for stage in STAGES:
        values = [s[stage] for s in samples]
        print(f"| {stage} | {statistics.median(values):.2f} | "
              f"{percentile(values, 99):.2f} | "
              f"{max(values):.2f} |")
    window.close()
    window.deleteLater()
    app.processEvents()


if __name__ == "__main__":
    main()
