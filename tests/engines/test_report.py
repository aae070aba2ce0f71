"""`clarion model report` writes Markdown and figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.cli import main


def test_report_writes_markdown_and_pngs(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    assert main(["model", "report", "t2d", "--out", str(out), "--patients", "1500"]) == 0
    text = (out / "report.md").read_text()
    for needle in ("AUROC", "AUPRC", "ECE", "Logistic regression, latest values",
                   "ADA risk test", "sex F", "age 45-64", "synthetic"):
        assert needle in text, needle
    # Calibration for every probability; the ADA points score says why it has none.
    [lr_row] = [line for line in text.splitlines()
                if line.startswith("| Logistic regression") and "ECE" not in line][:1]
    assert re.fullmatch(r"\| Logistic regression, latest values( \| 0\.\d{4}){4} \|", lr_row)
    assert "nan" not in text and "n/a (points)" in text
    for png in ("roc.png", "pr.png", "reliability.png", "subgroups.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


def test_unknown_model_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["model", "report", "nope", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "nope" in err and "available models:" in err
    for shipped in ("ecg_beats", "ecg_rhythm", "t2d"):
        assert shipped in err.split("available models:")[1]
