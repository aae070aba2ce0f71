"""The shipped model on ONNX Runtime, and the validation gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from engines.base import Engine
from engines.card import ModelCard, load_card
from engines.inputs import ModelInput, collate
from engines.onnxruntime import OnnxRuntimeEngine
from engines.select import select_engine
from engines.validation import auroc, run_gate


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return load_card("t2d")


def test_card_files_match_their_hashes(card: ModelCard) -> None:
    assert card.verify_files() == []
    assert "synthetic" in card.disclaimer and card.max_events == 2048
    assert {t.name for t in card.tiers} == {"high", "elevated"}
    assert all(card.screenings[s].source for t in card.tiers for s in t.screenings)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("events", [1, 16, 513, 2048])
def test_dynamic_history_length(card: ModelCard, precision: str, events: int) -> None:
    engine = OnnxRuntimeEngine(card, precision)
    rng = np.random.default_rng(events)
    item = ModelInput(rng.integers(1, len(card.vocabulary), events).astype(np.int64),
                      rng.normal(0, 1, events).astype(np.float32),
                      np.sort(rng.uniform(0, 10, events)).astype(np.float32),
                      np.zeros(len(card.static), np.float32))
    risk = engine.infer(collate(card, [item, item]))
    assert risk.shape == (2,) and np.all((risk >= 0) & (risk <= 1)) and risk[0] == risk[1]


def test_padding_does_not_change_the_risk(card: ModelCard) -> None:
    engine = OnnxRuntimeEngine(card)
    item = ModelInput(np.array([2, 5, 12], np.int64), np.array([1.2, 0.8, 0], np.float32),
                      np.array([0.1, 0.5, 2.0], np.float32), np.zeros(len(card.static), np.float32))
    alone = engine.infer(collate(card, [item]))
    padded = engine.infer(collate(card, [item], length=2048))
    np.testing.assert_allclose(alone, padded, atol=1e-6)


def test_auroc_matches_a_hand_computed_case() -> None:
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.35, 0.9])
    # Positives 0.35, 0.8, 0.9 against negatives 0.1, 0.4, 0.35: 7.5 of 9 pairs.
    assert auroc(labels, scores) == pytest.approx(7.5 / 9)


def test_int8_passes_the_gate(card: ModelCard) -> None:
    gate = run_gate(card, OnnxRuntimeEngine(card), OnnxRuntimeEngine(card, "int8"), limit=2000)
    assert gate.passed, gate.reason
    assert gate.mean_kl < 0.05 and gate.auroc_drop <= 0.005


def _broken_copy(card: ModelCard, folder: Path) -> ModelCard:
    """A real ONNX model whose weight matrices are scrambled: the engine runs, wrongly."""
    for name in ("card.json", "validation.npz", "model.onnx", "model.int8.onnx"):
        shutil.copy(card.directory / name, folder / name)
    model = onnx.load(folder / "model.int8.onnx")
    rng = np.random.default_rng(0)
    for tensor in model.graph.initializer:
        if len(tensor.dims) == 2 and tensor.name.endswith("weight"):
            weights = numpy_helper.to_array(tensor)
            scrambled = rng.permutation(weights.reshape(-1)).reshape(weights.shape)
            tensor.CopyFrom(numpy_helper.from_array(scrambled, tensor.name))
    onnx.save(model, folder / "model.int8.onnx")
    data = json.loads((folder / "card.json").read_text())
    data["sha256"].pop("int8")
    (folder / "card.json").write_text(json.dumps(data))
    return load_card(folder)


def test_a_wrong_engine_is_refused_and_the_reference_used(card: ModelCard,
                                                         tmp_path: Path) -> None:
    broken = _broken_copy(card, tmp_path)
    gate = run_gate(broken, OnnxRuntimeEngine(broken), OnnxRuntimeEngine(broken, "int8"),
                    limit=1500)
    assert not gate.passed and ("AUROC drop" in gate.reason or "KL" in gate.reason)
    selection = select_engine(broken, tmp_path / "cache", allow_tensorrt=False, gate_limit=1500)
    assert selection.engine.name == "onnxruntime-cpu"
    [int8] = [c for c in selection.candidates if c.name == "onnxruntime-cpu-int8"]
    assert not int8.usable and int8.gate is not None and not int8.gate.passed


def test_selection_without_tensorrt_says_why(card: ModelCard, tmp_path: Path) -> None:
    selection = select_engine(card, tmp_path, gate_limit=500)
    [trt] = [c for c in selection.candidates if c.name == "tensorrt"]
    # The test extra installs the real TensorRT-RTX; this machine has no NVIDIA driver.
    assert not trt.usable and trt.reason == (
        "tensorrt-rtx 1.7.1.116: no usable CUDA GPU: cudaErrorInsufficientDriver (CUDA driver "
        "version is insufficient for CUDA runtime version)")
    assert isinstance(selection.engine, Engine)
    assert selection.engine.name in ("onnxruntime-cpu", "onnxruntime-cpu-int8")
