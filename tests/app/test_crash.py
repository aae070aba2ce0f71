"""kill -9 the listener mid-stream; restart; resend what was not ACKed: stored exactly once.

And SIGTERM: the listener stops accepting, answers or abandons what is in flight, exits 0.
The listener runs as a real `clarion listen` process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from app.store.models import InboxMessage, ObservationRecord
from integrations.mllp import MllpClient
from tests.app.helpers import ack_fields, hl7_message, wait_processed

TOTAL = 2000
SENDERS = 4


def message(n: int) -> bytes:
    return hl7_message(
        f"MSH|^~\\&|LAB|HOSP|CLARION|WS|20260105080000||ORU^R01|CRASH-{n:05d}|P|2.5",
        f"PID|1||P{n % 97}^^^HOSP^MR||Test^Pat", f"OBR|1||ORD-{n}|X",
        f"OBX|1|NM|2345-7^Glucose^LN||{90 + n % 50}|mg/dL|||||F").encode()


def start_listener(db_url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    env = dict(os.environ, CLARION_PATHS__DATA_DIR=str(data_dir),
               CLARION_LOGGING__LEVEL="WARNING")
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / f"listen-{time.monotonic_ns()}.err"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "listen", "--port", "0", "--db", db_url],
            stderr=err, stdout=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        match = re.search(r"listening on [\d.]+:(\d+)", log.read_text())
        if match:
            return proc, int(match.group(1))
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"clarion listen did not start: {log.read_text()[-2000:]}")


def stream(port: int, numbers: list[int], acked: set[int], lock: threading.Lock) -> None:
    """Send in order; stop at the first broken connection (the listener died)."""
    try:
        with MllpClient("127.0.0.1", port, timeout=30) as client:
            for n in numbers:
                ack = ack_fields(client.send(message(n)))
                assert ack["MSA"][1] == "AA" and ack["MSA"][2] == f"CRASH-{n:05d}"
                with lock:
                    acked.add(n)
    except (ConnectionError, OSError):
        return


def run_senders(port: int, todo: list[int], acked: set[int]) -> None:
    lock = threading.Lock()
    threads = [threading.Thread(target=stream, args=(port, todo[i::SENDERS], acked, lock))
               for i in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)


@pytest.mark.slow
def test_kill_9_mid_stream_then_resend_stores_every_message_once(
        db_url: str, tmp_path: Path) -> None:
    acked: set[int] = set()
    proc, port = start_listener(db_url, tmp_path / "data")
    try:
        senders = threading.Thread(target=run_senders, args=(port, list(range(TOTAL)), acked))
        senders.start()
        while len(acked) < TOTAL // 3 and senders.is_alive():
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        senders.join(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert TOTAL // 3 <= len(acked) < TOTAL, "the kill must land mid-stream"

    # Restart: what was received but not processed is processed; the senders resend the rest.
    proc, port = start_listener(db_url, tmp_path / "data")
    try:
        run_senders(port, [n for n in range(TOTAL) if n not in acked], acked)
        assert len(acked) == TOTAL
        engine = create_engine(db_url)
        wait_processed(engine, timeout=120)
        with Session(engine) as s:
            ids = s.scalars(select(InboxMessage.control_id)).all()
            assert len(ids) == len(set(ids)) == TOTAL
            assert s.scalar(select(func.count()).where(
                InboxMessage.status != "processed")) == 0
            assert s.scalar(select(func.count()).select_from(ObservationRecord)) == TOTAL
        engine.dispose()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_sigterm_answers_in_flight_and_exits_cleanly(db_url: str, tmp_path: Path) -> None:
    acked: set[int] = set()
    proc, port = start_listener(db_url, tmp_path / "data")
    senders = threading.Thread(target=run_senders, args=(port, list(range(400)), acked))
    senders.start()
    while len(acked) < 50:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    senders.join(60)
    engine = create_engine(db_url)
    with Session(engine) as s:
        stored = set(s.scalars(select(InboxMessage.control_id)))
    engine.dispose()
    # Every ACKed message is in the store; nothing is in it twice.
    assert {f"CRASH-{n:05d}" for n in acked} <= stored
