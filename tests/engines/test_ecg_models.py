"""The shipped ECG models: their cards, their gate's verdicts, their report, and their
ONNX files in the real TensorRT-RTX parser (no GPU needed to parse)."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest

from engines.card import load_card
from engines.inputs import example_batches
from engines.onnxruntime import OnnxRuntimeEngine
from engines.report import classifier_report
from engines.validation import load_validation, run_gate


@pytest.mark.parametrize("model", ["ecg_rhythm", "ecg_beats"])
def test_card_files_and_gate_agree(model: str) -> None:
    card = load_card(model)
    assert card.is_classifier and card.kind == model and not card.verify_files()
    gate = card.raw["int8_gate"]
    # The INT8 copy is shipped exactly when it passed the training-time gate.
    assert ("int8" in card.files) == gate["passed"]
    assert (card.directory / "model.int8.onnx").exists() == gate["passed"]
    if not gate["passed"]:
        assert gate["mean_kl"] >= 0.05 or gate["macro_f1_drop"] >= 0.8
    assert "calibration" in gate and int(gate["calibration"].split()[1].rstrip(",")) >= 1000
    fp32 = OnnxRuntimeEngine(card)
    fp32.load()
    for batch in example_batches(card):  # dynamic batch (and strip length)
        probs = fp32.infer(batch)
        assert probs.shape == (len(next(iter(batch.values()))), len(card.classes))
        assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)


def test_the_runtime_gate_judges_a_classifier() -> None:
    card = load_card("ecg_beats")
    reference, int8 = OnnxRuntimeEngine(card), OnnxRuntimeEngine(card, "int8")
    reference.load()
    int8.load()
    same = run_gate(card, reference, reference, validation=load_validation(card))
    assert same.passed and same.mean_kl < 1e-9
    result = run_gate(card, reference, int8, validation=load_validation(card))
    assert 0 < result.mean_kl < 0.05 and result.patients > 500
    # The verdict follows the figures: macro-F1 of INT8's calls against FP32's must stay
    # within 0.8 points. On the synthetic gate inputs the beat model's INT8 copy misses
    # that (README: the app then runs FP32), though it passed on DS2 at training.
    drop = 100.0 - result.auroc_candidate
    assert result.passed == (drop < 0.8), result.reason


def test_report_sets_the_beats_beside_the_published_results() -> None:
    text = classifier_report(load_card("ecg_beats"))
    for name in ("de Chazal 2004", "Mar 2011", "Zhang 2014", "| S |", "| V |", "INT8",
                 "S by timing", "The network alone: S F1"):
        assert name in text
    assert "Challenge F1" in classifier_report(load_card("ecg_rhythm"))


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="TensorRT-RTX has no wheel for this machine")
@pytest.mark.parametrize(("model", "precision"), [("ecg_beats", "fp32"), ("ecg_beats", "int8"),
                                                  ("ecg_rhythm", "fp32")])
def test_tensorrt_rtx_builds_the_ecg_models(model: str, precision: str,
                                           tmp_path: Path) -> None:
    """The real TensorRT-RTX builder (ahead of time, on the CPU) parses and builds each
    ECG file, the INT8 Q/DQ one (int8 weights and activations, float biases) included, with
    the profile its card's shapes give. Running the plans needs an RTX GPU (README)."""
    from engines.tensorrt import TensorRTEngine

    card = load_card(model)
    engine = TensorRTEngine(card, tmp_path, precision, edition="tensorrt-rtx")
    plan = engine.build()
    meta = engine.metadata
    assert plan.stat().st_size == meta["plan_bytes"] > 10_000
    assert meta["inputs"] == list(card.input_names) and meta["precision"] == precision
    assert meta["model_sha256"] == card.sha256[precision]
    profile = meta["build"]["profile"][card.input_names[0]]
    assert profile[0][0] == 1 and profile[2][0] >= 128  # a batch of 1 up to a record's
    assert not [w for w in meta["warnings"] if "Unused Input" in w], meta["warnings"]


@pytest.mark.parametrize("model", ["ecg_beats", "ecg_rhythm"])
def test_the_shipped_weights_run_under_pytorch(model: str) -> None:
    """The benchmarks' PyTorch rows run the shipped model itself: the FP32 ONNX weights,
    BatchNorm folded, read back into the network, give ONNX Runtime's probabilities."""
    torch = pytest.importorskip("torch", reason="PyTorch is the `train` extra "
                                "(pip install -e '.[train]')")
    pytest.importorskip("onnx", reason="onnx comes with the `train` extra")
    from engines.training.ecg_model import from_onnx, network, shipped

    card = load_card(model)
    net = shipped(card)
    engine = OnnxRuntimeEngine(card, "fp32")
    engine.load()
    batch = next(iter(example_batches(card)))
    with torch.inference_mode():
        eager = net(*(torch.from_numpy(batch[name]) for name in card.input_names)).numpy()
    assert np.abs(eager - engine.infer(batch)).max() < 1e-5
    with pytest.raises(ValueError, match="no match"):
        other = load_card("ecg_rhythm" if model == "ecg_beats" else "ecg_beats")
        from_onnx(network(other), str(card.path("fp32")))


def test_the_timing_rule_is_fitted_on_ds1_and_measured_on_ds2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ecg_train timing` on a copy of the shipped beat model, with two records a side to
    keep it quick (209, frequent premature atrial beats, for DS1; 232, whose early beats
    are three in four, and 100 for DS2): the thresholds come from the DS1 grid, the card
    keeps the network's own figures beside the rule's, and its checksums still hold."""
    import json
    import shutil

    from engines.card import MODELS_DIR
    from engines.training import ecg_data, ecg_train

    try:
        ecg_data.database("mitdb")
    except ecg_data.EcgDataMissing as exc:
        pytest.skip(str(exc))
    shutil.copytree(MODELS_DIR / "ecg_beats", tmp_path / "ecg_beats")
    card_path = tmp_path / "ecg_beats" / "card.json"
    card = json.loads(card_path.read_text())
    card["metrics"].pop("model_alone", None)  # as a freshly trained card has it
    card.pop("supraventricular", None)
    card_path.write_text(json.dumps(card))
    monkeypatch.setattr(ecg_train, "DS1", ("209",))
    monkeypatch.setattr(ecg_train, "DS2", ("232", "100"))
    fitted = ecg_train.fit_timing(tmp_path / "ecg_beats", MODELS_DIR / "ecg_rhythm")
    rule = fitted["supraventricular"]
    grid = rule["ds1_s_f1"]
    assert grid[f"{rule['max_pre_over_ref']}/{rule['max_af_regular_share']}"] == max(
        grid.values())
    metrics = fitted["metrics"]
    assert metrics["beats"] == sum(map(sum, metrics["confusion"])) == 1780 + 2273
    assert metrics["classes"]["S"]["support"] == 1382 + 33  # 232's and 100's
    assert metrics["classes"]["S"]["f1"] > metrics["model_alone"]["classes"]["S"]["f1"]
    assert metrics["model_alone"]["classes"]["S"]["f1"] == card["metrics"]["classes"]["S"]["f1"]
    assert load_card(tmp_path / "ecg_beats").raw["supraventricular"] == rule
