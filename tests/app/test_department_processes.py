"""A department in real processes on the real PostgreSQL server: one receiver (`clarion
listen`), three workstations (`clarion workstation`, each on its own database role with
row-level security, each routed another point of care), and an interface engine stand-in
(python-hl7's MLLP client). A result for the patient at workstation 2 raises a banner
there and nowhere else; workstation 2's database connections are killed mid-stream and
it catches up from the journal, missing nothing and doubling nothing."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hl7.client import MLLPClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.cli import main
from app.store.db import open_store
from tests.app.helpers import hl7_message
from tests.conftest import POSTGRES_ENV, _postgres_schema_url

pytestmark = pytest.mark.postgres
STAMP = "20261201080000+0000"
UNITS = {"ws1": ("ED", "ER"), "ws2": ("CLINIC", "CLINIC"), "ws3": ("WARD", "WARD4")}


class Process:
    """A `clarion` command in its own process; its stdout (and stderr) lines, queued."""

    def __init__(self, name: str, *args: str) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
            env={**os.environ, "PYTHONUNBUFFERED": "1", "QT_QPA_PLATFORM": "offscreen"})
        self.lines: queue.Queue[str] = queue.Queue()
        self.records: list[dict] = []  # every JSON line it printed, in order
        self.err: list[str] = []

        def keep(line: str) -> None:
            if line.startswith("{"):
                self.records.append(json.loads(line))
            self.lines.put(line)

        self.readers = [threading.Thread(target=lambda s=stream, k=sink: [
            k(x.rstrip()) for x in s], daemon=True) for stream, sink in (
                (self.process.stdout, keep), (self.process.stderr, self.err.append))]
        for reader in self.readers:
            reader.start()

    def wait_for(self, test, timeout: float = 90.0) -> dict:  # noqa: ANN001
        """The next JSON stdout line for which `test(line)` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None and self.lines.empty():
                raise AssertionError(f"{self.name} exited {self.process.returncode}: "
                                     + "\n".join(self.err[-20:]))
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line.startswith("{") and test(record := json.loads(line)):
                return record
        raise AssertionError(f"{self.name}: nothing came in {timeout} s; stderr: "
                             + "\n".join(self.err[-20:]))

    def stop(self) -> int:
        self.process.terminate()
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = -9
        for reader in self.readers:
            reader.join(10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code


def write_config(folder: Path, name: str, url: str, **sections: dict) -> Path:
    lines = [f'[database]\nurl = "{url}"', f'[paths]\ndata_dir = "{folder / name}"',
             '[ingest]\nfeed_timezone = "UTC"', "[alerts]\nsuppress_days = 0"]
    for section, values in sections.items():
        lines.append(f"[{section}]\n" + "\n".join(f"{k} = {json.dumps(v)}"
                                                   for k, v in values.items()))
    path = folder / f"{name}.toml"
    path.write_text("\n\n".join(lines) + "\n")
    return path


@pytest.fixture
def store() -> Iterator[tuple[str, dict[str, str]]]:
    """A migrated store with three departments and a role per workstation (dropped after)."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set; a department's processes share PostgreSQL")
    tag = uuid.uuid4().hex[:8]
    group = f"clarion_ws_{tag}"
    roles = {ws: f"{ws}_{tag}" for ws in UNITS}
    for url in _postgres_schema_url(base):
        open_store(url).dispose()
        for ws, (dept, unit) in UNITS.items():
            assert main(["department", "init", "--department", dept, "--locations", unit,
                         "--group", group, "--db", url]) == 0
            assert main(["department", "add-workstation", roles[ws], "--department", dept,
                         "--workstation", ws, "--group", group, "--db", url]) == 0
        try:
            yield url, {ws: make_url(url).set(username=role).render_as_string(
                hide_password=False) for ws, role in roles.items()}
        finally:
            admin = create_engine(base)
            with admin.begin() as conn:
                for role in (*roles.values(), group):
                    conn.exec_driver_sql(f'SELECT pg_terminate_backend(pid) FROM '
                                         f"pg_stat_activity WHERE usename = '{role}'")
            admin.dispose()
    admin = create_engine(base)
    with admin.begin() as conn:
        for role in (*roles.values(), group):
            conn.exec_driver_sql(f'DROP OWNED BY "{role}"')
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
    admin.dispose()


def pid(mrn: str) -> str:
    return f"PID|1||{mrn}^^^H^MR||Proc^{mrn}||19600101|F||2029-7^Asian Indian^CDCREC"


def result(mrn: str, control: str) -> str:
    return hl7_message(f"MSH|^~\\&|LAB|H|C|W|{STAMP}||ORU^R01|{control}|P|2.5", pid(mrn),
                       f"OBR|1||O{control}|X|||{STAMP}",
                       f"OBX|1|NM|4548-4^HbA1c^LN||6.3|%|||||F|||{STAMP}")


def test_one_receiver_three_workstations(store: tuple[str, dict[str, str]], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    owner_url, ws_urls = store
    receiver_config = write_config(tmp_path, "receiver", owner_url,
                                   department={"role": "receiver"},
                                   listener={"port": 0})
    receiver = Process("receiver", "listen", "--config", str(receiver_config))
    workstations = {ws: Process(ws, "workstation", "--config", str(write_config(
        tmp_path, ws, ws_urls[ws], department={"role": "workstation"},
        workstation={"name": ws, "locations": [UNITS[ws][1]]}))) for ws in UNITS}
    try:
        deadline = time.monotonic() + 60
        while not any("listening on" in line for line in receiver.err):
            assert time.monotonic() < deadline and receiver.process.poll() is None, \
                receiver.err
            time.sleep(0.1)
        port = int(next(x for x in receiver.err if "listening on" in x)
                   .split("listening on ")[1].split(";")[0].rsplit(":", 1)[1])
        for process in workstations.values():
            process.wait_for(lambda r: r.get("following"))

        feed = MLLPClient("127.0.0.1", port)

        def send(message: str) -> None:
            ack = feed.send_message(message.encode())
            assert "MSA|AA" in (ack.decode() if isinstance(ack, bytes) else ack), ack

        # a history that raises P2's risk; then each patient arrives at one unit
        send(hl7_message(f"MSH|^~\\&|ADT|H|C|W|{STAMP}||ADT^A08|H1|P|2.5", pid("P2"),
                         "PV1|1|O|CLINIC", "DG1|1||R73.03^Prediabetes^I10||20240101",
                         "DG1|2||Z83.3^Family history^I10||20240101"))
        for n, (_dept, unit) in enumerate(UNITS.values(), start=1):
            send(hl7_message(f"MSH|^~\\&|ADT|H|C|W|{STAMP}||ADT^A04|V{n}|P|2.5",
                             pid(f"P{n}"), f"PV1|1|O|{unit}^1^1^H"))
        send(result("P2", "R1"))
        workstations["ws2"].wait_for(lambda r: "alert" in r)
        time.sleep(1.0)  # the opening's and the result's alerts, whichever came
        before = [r for r in workstations["ws2"].records if "alert" in r]

        # kill every database connection of workstation 2, then send on at once
        admin = create_engine(os.environ[POSTGRES_ENV])
        with admin.begin() as conn:
            killed = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE usename = :role"), {"role": make_url(ws_urls["ws2"]).username}).scalar()
        admin.dispose()
        assert killed >= 1
        for n in range(2, 5):
            send(result("P2", f"R{n}"))
        for _ in range(3):
            workstations["ws2"].wait_for(lambda r: "alert" in r)
        feed.close()
        time.sleep(2.0)  # anything that should not come (a double, a stray) would come now

        alerts = [r for r in workstations["ws2"].records if "alert" in r]
        assert len(alerts) == len(before) + 3  # one per result after the kill, none twice
        assert len({a["alert"] for a in alerts}) == len(alerts)
        assert {a["mrn"] for a in alerts} == {"P2 (H)"}
        assert all(a["model"].startswith("t2d") for a in alerts)
        # nowhere else
        for ws in ("ws1", "ws3"):
            assert not [r for r in workstations[ws].records if "alert" in r], ws
            assert [r for r in workstations[ws].records if "change" in r]  # but it followed
        # workstation 2 was handed each of its department's changes once, in order (its
        # role sees no other): P2's history, arrival and four results
        owner = create_engine(owner_url)
        with owner.connect() as conn:
            expected = list(conn.scalars(text(
                "SELECT c.message_id FROM patient_changes c JOIN patient_identifiers i "
                "ON i.patient_id = c.patient_id WHERE i.value = 'P2' ORDER BY c.id")))
            logged = conn.execute(text(
                "SELECT workstation, department, count(*) FROM alert_events "
                "WHERE event = 'displayed' GROUP BY workstation, department")).all()
        owner.dispose()
        assert len(expected) == 6
        assert [r["change"] for r in workstations["ws2"].records if "change" in r] == expected
        assert [tuple(r) for r in logged] == [("ws2", "CLINIC", len(alerts))]
        # the department's adoption, per workstation, from the one log
        capsys.readouterr()
        assert main(["stats", "--by", "workstation", "--json", "--db", owner_url]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert list(rows) == ["ws2"]
        assert rows["ws2"]["alerts"] == rows["ws2"]["displayed"] == len(alerts)
    finally:
        codes = {p.name: p.stop() for p in (*workstations.values(), receiver)}
    assert codes == {"ws1": 0, "ws2": 0, "ws3": 0, "receiver": 0}, codes
