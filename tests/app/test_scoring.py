"""Scoring stored patients: risk, tier, factors in words, the two rules beside the model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.cli import main
from app.clinic.features import FeatureCache
from app.clinic.scoring import GROUPS, Scorer, _occlude
from app.config import Config
from app.ingest.processor import Processor
from app.store.db import open_store
from app.store.patients import find_by_identifier
from engines.card import load_card
from engines.inputs import collate
from engines.onnxruntime import OnnxRuntimeEngine
from tests.app.helpers import hl7_message, store_raw

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'clarion.db'}"


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    engine = open_store(config.database_url)
    yield engine
    engine.dispose()


def patient_feed(mrn: str, a1c: list[tuple[str, str]], dx: list[str] = (),  # type: ignore[assignment]
                 bmi: str = "33", sex: str = "F", dob: str = "19620101") -> list[str]:
    pid = f"PID|1||{mrn}^^^H^MR||Test^Pat||{dob}|{sex}||2029-7^Asian Indian^CDCREC"
    out = []
    for n, (when, value) in enumerate(a1c):
        out.append(hl7_message(
            f"MSH|^~\\&|LAB|H|C|W|{when}||ORU^R01|{mrn}-{n}|P|2.5", pid,
            f"OBR|1||{mrn}-O{n}|X|||{when}",
            f"OBX|1|NM|4548-4^HbA1c^LN||{value}|%|||||F|||{when}",
            f"OBX|2|NM|39156-5^BMI^LN||{bmi}|kg/m2|||||F|||{when}"))
    for n, code in enumerate(dx):
        out.append(hl7_message(f"MSH|^~\\&|ADT|H|C|W|20240101||ADT^A08|{mrn}-D{n}|P|2.5", pid,
                               "PV1|1|O", f"DG1|1||{code}^dx^I10||20240101"))
    return out


def _scorer(engine: Engine) -> Scorer:
    card = load_card("t2d")
    return Scorer(card, OnnxRuntimeEngine(card), FeatureCache(engine))


def _patient_id(engine: Engine, mrn: str) -> int:
    with Session(engine) as s:
        [p] = find_by_identifier(s, mrn, "H")
        return p.id


def test_high_risk_patient_gets_tier_and_factors_in_words(engine: Engine) -> None:
    store_raw(engine, *patient_feed("HI1", [("20250601090000+0000", "5.9"),
                                            ("20260520090000+0000", "6.3")],
                                    dx=["R73.03", "Z83.3", "I10"]))
    Processor(engine).process_pending()
    result = _scorer(engine).score(_patient_id(engine, "HI1"), NOW)
    [score] = result.scores
    assert score.risk is not None and score.risk >= 0.10
    assert score.tier in ("high", "elevated")
    words = [f.words for f in score.factors]
    assert "HbA1c 6.3 % (5.9 % a year ago)" in words
    assert result.latency_ms["features"] > 0 and result.latency_ms["inference"] > 0
    assert score.finding == ""


def test_factor_call_scores_only_the_groups_that_remove_something(engine: Engine) -> None:
    store_raw(engine, *patient_feed("HI2", [("20250601090000+0000", "5.9"),
                                            ("20260520090000+0000", "6.3")],
                                    dx=["R73.03", "Z83.3", "I10"]))
    Processor(engine).process_pending()
    card = load_card("t2d")
    ort = OnnxRuntimeEngine(card)
    batches: list[int] = []

    class Recording(OnnxRuntimeEngine):  # the real engine, noting each batch's size
        def infer(self, batch: dict[str, np.ndarray]) -> np.ndarray:
            batches.append(len(batch["values"]))
            return super().infer(batch)

    cache = FeatureCache(engine)
    patient_id = _patient_id(engine, "HI2")
    [score] = Scorer(card, Recording(card), cache).score(patient_id, NOW).scores
    # On record: HbA1c, BMI, hypertension, prediabetes, family history; age and a South
    # Asian ethnicity are static. Glucose, lipids, gestational diabetes, PCOS and severe
    # mental illness are absent, so those five rows would repeat the patient's own.
    assert batches == [1 + len(GROUPS) - 5]
    item = cache.get(patient_id).inputs(card, NOW)
    risk = float(ort.infer(collate(card, [item]))[0])
    assert score.risk == pytest.approx(risk, abs=1e-6)
    expected = {}
    for group, names, static in GROUPS:
        without = float(ort.infer(collate(card, [_occlude(card, item, names, static)]))[0])
        expected[group] = risk - without
    assert expected["Glucose"] == 0.0 and expected["PCOS"] == 0.0
    assert score.factors
    for factor in score.factors:
        assert factor.contribution == pytest.approx(expected[factor.group], abs=1e-6)
    top = sorted((g for g in expected if expected[g] > 0.005), key=expected.__getitem__,
                 reverse=True)[:3]
    assert [f.group for f in score.factors] == top


def test_low_risk_patient_is_low(engine: Engine) -> None:
    store_raw(engine, *patient_feed("LO1", [("20260520090000+0000", "5.0")], bmi="22",
                                    dob="19950101"))
    Processor(engine).process_pending()
    [score] = _scorer(engine).score(_patient_id(engine, "LO1"), NOW).scores
    assert score.risk is not None and score.risk < 0.05 and score.tier == "low"


def test_diabetes_on_record_is_out_of_scope(engine: Engine) -> None:
    store_raw(engine, *patient_feed("DM1", [("20260520090000+0000", "7.4")], dx=["E11.9"]))
    Processor(engine).process_pending()
    [score] = _scorer(engine).score(_patient_id(engine, "DM1"), NOW).scores
    assert score.risk is None and score.tier == "not-applicable"
    assert "diabetes on record" in score.out_of_scope and score.finding == ""


def test_diagnostic_range_without_diagnosis_is_its_own_finding(engine: Engine) -> None:
    store_raw(engine, *patient_feed("UD1", [("20260520090000+0000", "6.8")]))
    Processor(engine).process_pending()
    [score] = _scorer(engine).score(_patient_id(engine, "UD1"), NOW).scores
    assert score.risk is not None  # the model's risk is still reported beside it
    assert score.finding.startswith("possible undiagnosed diabetes: confirm")
    assert "HbA1c 6.8 %" in score.finding


def test_score_cli_json_schema(config: Config, engine: Engine,
                               capsys: pytest.CaptureFixture[str]) -> None:
    store_raw(engine, *patient_feed("JS1", [("20260520090000+0000", "6.1")]),
              *patient_feed("JS2", [("20260520090000+0000", "5.2")], bmi="24"))
    Processor(engine).process_pending()
    assert main(["score", "--mrn", "JS1", "--authority", "H", "--mrn", "JS2", "--json",
                 "--engine", "onnxruntime", "--db", config.database_url]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["mrn"] for line in lines] == ["JS1", "JS2"]
    for line in lines:
        assert set(line) >= {"mrn", "authority", "scores", "engine", "latency_ms"}
        [score] = line["scores"]
        assert set(score) >= {"label", "risk", "tier", "factors"}
        assert 0 <= score["risk"] <= 1 and score["label"] == "t2d_12m"
        assert line["engine"] == "onnxruntime-cpu"
        assert set(line["latency_ms"]) == {"features", "inference"}
    assert lines[0]["scores"][0]["risk"] > lines[1]["scores"][0]["risk"]
