"""A soak of the real app: thousands of patients routed in and out by ADT, hundreds of
banners, and the app still alive and answering at the end. Run as a program:

    QT_QPA_PLATFORM=offscreen python -m tests.ui.soak PATIENTS OUT.json

The desktop app's pieces as `clarion` runs them (listener, SQLite store, fast lane,
processing worker, ONNX Runtime, main window, banner queue), on a throwaway profile,
routed to unit ER. Each patient arrives (A04 to ER), gets a result, and leaves (A03);
every fourth has a history that raises banners, which a simulated doctor acknowledges,
dismisses or snoozes as they come up, one at a time. Writes what it measured to OUT.json; a crash (such as
PySide6 6.12.0's `bool_dealloc`) ends the process instead.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path


def main(patients: int, out: Path) -> int:
    from app.adoption.log import DismissReason
    from integrations.mllp import MllpClient
    from tests.app.helpers import ack_fields, hl7_message
    from tests.ui.appkit import desktop_app, throwaway_config
    from ui.qt import QApplication, QTimer

    app = QApplication([])
    config = throwaway_config(Path(tempfile.mkdtemp()))
    config.alerts.max_per_hour = 10**6
    config.alerts.expire_after_s = 30.0
    with desktop_app(config) as (clinic, service, window, port):
        window.show()
        true_before = sys.getrefcount(True)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        counts = {"shown": 0, "acknowledged": 0, "dismissed": 0, "snoozed": 0, "opened_max": 0}

        def doctor(alert: object, _when: object) -> None:
            counts["shown"] += 1
            n = counts["shown"] % 3

            def act() -> None:
                if window.banner.alert is not alert:
                    return
                if n == 0:
                    counts["snoozed"] += 1
                    window.banner.snooze()
                elif n == 1:
                    counts["acknowledged"] += 1
                    window.banner.acknowledge()
                else:
                    counts["dismissed"] += 1
                    window.banner.dismiss(DismissReason.NOT_RELEVANT)
            QTimer.singleShot(5, act)

        window.banner.painted.connect(doctor)

        def pid(n: int) -> str:
            return f"PID|1||SK{n:05d}^^^H^MR||Soak^Pat{n}||19600101|F||2029-7^Asian Indian^CDCREC"

        def sender() -> None:
            with MllpClient("127.0.0.1", port) as client:
                def send(message: str) -> None:
                    assert ack_fields(client.send(message.encode()))["MSA"][1] == "AA"
                for n in range(patients):
                    stamp = "20260601080000+0000"
                    if n % 4 == 0:  # a history that raises a banner
                        send(hl7_message(f"MSH|^~\\&|ADT|H|C|W|{stamp}||ADT^A08|H{n}|P|2.5", pid(n),
                                         "PV1|1|O|CLINIC", "DG1|1||R73.03^Prediabetes^I10||20240101",
                                         "DG1|2||Z83.3^Family history^I10||20240101"))
                    send(hl7_message(f"MSH|^~\\&|ADT|H|C|W|{stamp}||ADT^A04|A{n}|P|2.5", pid(n),
                                     f"PV1|1|E|ER^1^{n % 30}^H||||||||||||||||V{n}"))
                    value = 6.3 if n % 4 == 0 else 5.2
                    send(hl7_message(f"MSH|^~\\&|LAB|H|C|W|{stamp}||ORU^R01|R{n}|P|2.5", pid(n),
                                     f"OBR|1||O{n}|X|||{stamp}",
                                     f"OBX|1|NM|4548-4^HbA1c^LN||{value}|%|||||F|||{stamp}"))
                    send(hl7_message(f"MSH|^~\\&|ADT|H|C|W|{stamp}||ADT^A03|D{n}|P|2.5", pid(n),
                                     f"PV1|1|E|ER^1^{n % 30}^H||||||||||||||||V{n}"))

        started = time.monotonic()
        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        while thread.is_alive():
            app.processEvents()
            counts["opened_max"] = max(counts["opened_max"], window.worklist_model.rowCount())
            time.sleep(0.002)
        settled = service.wait_settled(120)
        deadline = time.monotonic() + 120
        while (window.worklist_model.rowCount() or len(window.queue)) and \
                time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        elapsed = time.monotonic() - started
        # Still answering: an ACK from the listener, an event loop that runs, a window that
        # repaints.
        with MllpClient("127.0.0.1", port) as client:
            ack = ack_fields(client.send(hl7_message(
                "MSH|^~\\&|ADT|H|C|W|20260601||ADT^A08|LAST|P|2.5", pid(0),
                "PV1|1|O|CLINIC").encode()))["MSA"][1]
        # that last message is counted once processed (reading the count at once raced
        # with the processor: 6,500 of 6,501 now and then)
        settled = service.wait_settled(60) and settled
        ticked = []
        QTimer.singleShot(0, lambda: ticked.append(True))
        for _ in range(20):
            app.processEvents()
        window.refresh_status()
        painted = not window.grab().isNull()
        clinic.log.flush()
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        from app.store.models import AlertEvent
        with Session(clinic.engine) as session:
            decisions = dict(session.execute(
                select(AlertEvent.event + " " + func.substr(AlertEvent.reason, 1, 14), func.count())
                .group_by(AlertEvent.event + " " + func.substr(AlertEvent.reason, 1, 14))).all())
        result = {
            "patients": patients, "seconds": round(elapsed, 1), "settled": settled,
            "messages_processed": clinic.messages_seen, "banners_shown": counts["shown"],
            "acknowledged": counts["acknowledged"], "dismissed": counts["dismissed"],
            "snoozed": counts["snoozed"],
            "open_at_end": window.worklist_model.rowCount(), "queued_at_end": len(window.queue),
            "most_open_at_once": counts["opened_max"], "ack_at_end": ack,
            "event_loop_runs": bool(ticked), "window_paints": painted,
            "decisions": decisions,
            "true_refcount_drift": true_before - sys.getrefcount(True),
            "max_rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                        - rss_before) / 1024, 1),
        }
        out.write_text(json.dumps(result, indent=1))
        return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), Path(sys.argv[2])))
