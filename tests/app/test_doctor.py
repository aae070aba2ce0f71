"""`clarion doctor` and `clarion --version`: the checks IT runs after an install, against
real files, a real port, the real store (SQLite and PostgreSQL) and the real engines."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.adoption.synthetic import write_log
from app.cli import main
from app.config import load_config
from app.ingest.service import IngestService
from app.store.db import open_store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path, port: int, url: str = "", extra: str = "") -> Path:
    path = tmp_path / "clarion.toml"
    database = f'[database]\nurl = "{url}"\n' if url else ""
    path.write_text(f'[listener]\nport = {port}\n[paths]\ndata_dir = "{tmp_path / "data"}"\n'
                    f"{database}{extra}")
    return path


def doctor(capsys: pytest.CaptureFixture[str], path: Path, *extra: str,
           display: object = None) -> tuple[int, dict[str, dict[str, str]]]:
    code = main(["doctor", "--config", str(path), "--json", *extra],
                display=display)  # type: ignore[arg-type]
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] == (code == 0)
    return code, {c["name"]: c for c in report["checks"]}


def test_a_fresh_install_is_healthy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, free_port())
    code, checks = doctor(capsys, path, display=lambda: None)
    assert code == 0, checks
    assert checks["version"]["detail"].startswith("clarion ")
    assert checks["config"]["status"] == "ok" and str(path) in checks["config"]["detail"]
    assert checks["database"]["status"] == "ok" and "first start" in checks["database"]["detail"]
    assert checks["listener"]["status"] == "ok" and "free" in checks["listener"]["detail"]
    assert "onnxruntime-cpu" in checks["engines"]["detail"]
    assert checks["display"]["status"] == "ok"
    assert "GiB free" in checks["data directory"]["detail"]
    # the plain form: one line per check
    assert main(["doctor", "--config", str(path)], display=lambda: None) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(checks) and lines[0].startswith("ok    version")
    assert not (tmp_path / "data" / "clarion.db").exists()  # looking creates nothing


def test_problems_fail_with_what_to_do(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as other:  # another program holds the port
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        path = write_config(tmp_path, port,
                            url="postgresql+psycopg://clarion@127.0.0.1:1/clarion")
        code, checks = doctor(capsys, path, display=lambda: "cannot open a window (xcb): "
                              "libxcb-cursor.so.0 missing; install: sudo apt-get install "
                              "libxcb-cursor0")
    assert code == 1
    assert checks["listener"]["status"] == "FAIL"
    assert "held by another program" in checks["listener"]["detail"]
    assert checks["database"]["status"] == "FAIL"
    assert "cannot connect" in checks["database"]["detail"]
    assert checks["display"]["status"] == "warn"  # a receiver needs none
    assert "apt-get install libxcb-cursor0" in checks["display"]["detail"]
    assert "firing" not in checks  # not read from a database that is not there


def test_a_bad_configuration_is_the_first_failure(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, 2575, extra="[alerts]\nsupress_days = 3\n")
    code, checks = doctor(capsys, path)
    assert code == 1
    assert checks["config"]["status"] == "FAIL"
    assert "unknown key 'alerts.supress_days'" in checks["config"]["detail"]


def test_a_running_clarion_holds_its_port(tmp_path: Path, db_url: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, free_port(), url=db_url)
    config = load_config(path)
    engine = open_store(config.database_url)
    service = IngestService(config, engine)
    service.start_in_thread()
    try:
        code, checks = doctor(capsys, path)
    finally:
        service.stop()
        engine.dispose()
    assert code == 0, checks
    assert "held by Clarion" in checks["listener"]["detail"]
    assert checks["database"]["status"] == "ok" and "migrated" in checks["database"]["detail"]
    assert not (config.data_dir / "listener.json").exists()  # withdrawn on stop


def test_a_firing_anomaly_is_reported(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, free_port())
    config = load_config(path)
    engine = open_store(config.database_url)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    write_log(engine, yesterday, days=40, clinicians=6, feed_outages=[yesterday],
              every_day=True)  # an emergency department: any day's outage stands out
    engine.dispose()
    code, checks = doctor(capsys, path)
    assert checks["firing"]["status"] == "warn"
    assert f"{yesterday.isoformat()}: messages received 0" in checks["firing"]["detail"]
    assert "check the feed" in checks["firing"]["detail"]
    assert code == 0  # a warning, not a failure


def test_version() -> None:
    done = subprocess.run([sys.executable, "-m", "app.cli", "--version"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.startswith("clarion 0.") and "Python 3." in done.stdout


def test_the_department_role_is_checked(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, free_port(), extra='[department]\nrole = "receiver"\n')
    code, checks = doctor(capsys, path)
    assert code == 1 and checks["role"]["status"] == "FAIL"
    assert "share one PostgreSQL store" in checks["role"]["detail"]
    path = write_config(tmp_path, free_port(),
                        url="postgresql+psycopg://clarion@127.0.0.1:1/clarion",
                        extra='[department]\nrole = "workstation"\n')
    _code, checks = doctor(capsys, path)
    assert checks["role"]["status"] == "ok" and "journal" in checks["role"]["detail"]
    assert "listener" not in checks  # a workstation does not listen


def test_a_workstation_does_not_listen(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, free_port(), extra='[department]\nrole = "workstation"\n')
    assert main(["listen", "--config", str(path)]) == 2
    assert "a workstation does not listen" in capsys.readouterr().err
