"""The operator commands: send, inbox, patient show, hl7 validate, config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main, split_messages
from app.config import Config
from tests.app.helpers import running_service, wait_processed

ORU = ("MSH|^~\\&|LAB|HOSP|CLARION|WS|20260105080000||ORU^R01|CLI-{n}|P|2.5\n"
       "PID|1||CLI-MRN^^^HOSP^MR||Doe^Jane||19700203|F\n"
       "OBR|1||ORD-{n}|4548-4^HbA1c^LN|||20260105070000\n"
       "OBX|1|NM|4548-4^HbA1c^LN||{v}|%|4.0-5.6|H|||F\n")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'clarion.db'}"


def test_send_inbox_and_patient_show(config: Config, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLARION_PATHS__DATA_DIR", config.paths.data_dir)
    two = tmp_path / "two.hl7"
    two.write_text(ORU.format(n=1, v="6.4") + ORU.format(n=2, v="6.6"))
    bad = tmp_path / "bad.hl7"
    bad.write_text("MSH|^~\\&|LAB|HOSP|C|W|2026||ORU^R01|CLI-3|P|2.5\nPID|1||\nOBX|1|NM|X||1\n")
    with running_service(config) as (service, port):
        assert main(["send", str(two), str(bad), "--to", f"127.0.0.1:{port}"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out == [f"{two} #1: AA", f"{two} #2: AA", f"{bad}: AA"]
        wait_processed(service.engine)

    db = ["--db", config.database_url]
    assert main(["inbox", "--json", "--failed", *db]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["processed"], summary["failed"], summary["pending"]) == (2, 1, 0)
    [failed] = summary["failed_messages"]
    assert failed["control_id"] == "CLI-3" and "PID-3" in failed["error"]

    assert main(["patient", "show", "CLI-MRN", "--authority", "HOSP", "--json", *db]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["patient"]["family_name"] == "Doe"
    assert sorted(o["value_num"] for o in record["observations"]) == [6.4, 6.6]

    assert main(["patient", "show", "CLI-MRN", *db]) == 0
    text = capsys.readouterr().out
    assert "Doe, Jane" in text and "HbA1c" in text
    assert main(["patient", "show", "NOBODY", *db]) == 1
    assert "no patient" in capsys.readouterr().err


def test_send_reports_connection_failure(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    f = tmp_path / "m.hl7"
    f.write_text(ORU.format(n=9, v="6"))
    assert main(["send", str(f), "--to", "127.0.0.1:1"]) == 1
    assert "127.0.0.1:1" in capsys.readouterr().err


def test_hl7_validate_reports_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       samples: list[Path]) -> None:
    broken = tmp_path / "broken.hl7"
    broken.write_text("MSH|^~\\&|L|H|C|W|20260101||ORU^R01^ORU_R01|V1|P|2.5\r"
                      "OBX|1|NM|X||not a number\r")
    assert main(["hl7", "validate", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "broken.hl7: 2 error(s)" in out
    assert "Missing required child ORU_R01_ORDER_OBSERVATION.OBR" in out  # no OBR before OBX
    assert "OBX_11" in out  # OBX-11 result status is required
    sample = next(p for p in samples if p.name == "ADT-A01-02.hl7")
    main(["hl7", "validate", str(sample)])
    assert str(sample) in capsys.readouterr().out


def test_split_messages_handles_bom_and_line_endings() -> None:
    data = b"\xef\xbb\xbfMSH|a\r\nPID|1\nMSH|b\rPID|2\r\n\r\n"
    assert split_messages(data) == [b"\xef\xbb\xbfMSH|a\rPID|1", b"MSH|b\rPID|2"]


def test_config_default_prints_every_section(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--default"]) == 0
    out = capsys.readouterr().out
    for section in ("[listener]", "[database]", "[ingest]", "[logging]", "[paths]"):
        assert section in out


def test_engines_lists_every_shipped_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """IT sees, per model, the engine in use and why each other one is not: the ECG models
    too, each with the gate its kind has (macro-F1 of the calls for a classifier)."""
    monkeypatch.setenv("CLARION_PATHS__DATA_DIR", str(tmp_path / "data"))
    assert main(["engines", "--json"]) == 0
    reports = {r["model"].split()[0]: r for r in json.loads(capsys.readouterr().out)["models"]}
    assert set(reports) == {"t2d", "ecg_beats", "ecg_rhythm"}
    for report in reports.values():
        assert report["candidates"][-1] == {"engine": "onnxruntime-cpu", "usable": True,
                                            "reason": "the reference (FP32)", "gate": None}
        assert report["candidates"][0]["engine"] == "tensorrt"
    int8 = {c["engine"]: c for c in reports["ecg_beats"]["candidates"]}["onnxruntime-cpu-int8"]
    assert "macro_f1_drop" in int8["gate"] and "auroc_drop" not in int8["gate"]
    assert "ships no int8 model" in reports["ecg_rhythm"]["candidates"][1]["reason"]
    assert main(["engines", "--model", "ecg_rhythm"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("model ecg_rhythm 1.0.0: using onnxruntime-cpu (fp32, model.onnx)")
    assert "t2d" not in text
