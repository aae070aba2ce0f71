"""The shipped ONNX graph computes the features its docstring documents.

The graph reads a code-major batch (engines/inputs.collate) and aggregates it with one
running sum read at the ends of each code's run; this checks graph and layout together,
event by event, against a plain NumPy reading of the definition on the patient's events in
their own order, most recent first (engines/training/model.py): per code the latest value,
presence, years since it, and its change against the earlier values, overall and per year;
standardized, then the wide and the deep path. The network weights are read from the ONNX
file.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from engines.card import ModelCard, load_card
from engines.inputs import ModelInput, collate
from engines.onnxruntime import OnnxRuntimeEngine
from engines.validation import load_validation


def reference_features(item: ModelInput, vocab: int, window: float) -> np.ndarray:
    latest, present, since = np.zeros(vocab), np.zeros(vocab), np.zeros(vocab)
    total, value_sum, age_sum = np.zeros(vocab), np.zeros(vocab), np.zeros(vocab)
    for code, value, age in zip(item.codes, item.values, item.ages, strict=True):
        if code <= 0 or not 0.0 <= age <= window:
            continue
        total[code] += 1
        value_sum[code] += value
        age_sum[code] += age
        if not present[code]:  # most recent first: the first one is the latest
            latest[code], present[code], since[code] = value, 1.0, age
    earlier = np.maximum(total - present, 1.0)
    has_trend = (total > 1.5).astype(float)
    delta = has_trend * (latest - (value_sum - latest) / earlier)
    years_apart = (age_sum - since) / earlier - since
    slope = np.clip(has_trend * delta / np.maximum(years_apart, 0.25), -5.0, 5.0)
    return np.concatenate([latest, present, since / 10.0, delta, slope, item.static])


def reference_risk(card: ModelCard, items: list[ModelInput]) -> np.ndarray:
    w = {i.name: numpy_helper.to_array(i).astype(np.float64)
         for i in onnx.load(str(card.path("fp32"))).graph.initializer}
    raw = np.stack([reference_features(i, len(card.vocabulary), card.window_years)
                    for i in items])
    x = (raw - w["shift"]) / w["scale"]
    hidden = x @ w["net.1.weight"].T + w["net.1.bias"]
    gelu = 0.5 * hidden * (1.0 + np.vectorize(math.erf)(hidden / math.sqrt(2.0)))
    logit = (x @ w["wide.weight"].T + w["wide.bias"] + gelu @ w["net.3.weight"].T
             + w["net.3.bias"])[:, 0]
    return 1.0 / (1.0 + np.exp(-(w["calib_a"] * logit + w["calib_b"])))


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return load_card("t2d")


def test_graph_matches_the_documented_features_on_validation_patients(card: ModelCard) -> None:
    items, _ = load_validation(card)
    sample = items[:200]
    got = OnnxRuntimeEngine(card).infer(collate(card, sample))
    assert np.max(np.abs(got - reference_risk(card, sample))) < 1e-4


def test_graph_matches_at_window_edges_padding_and_full_length(card: ModelCard) -> None:
    rng = np.random.default_rng(5)
    vocab = len(card.vocabulary)
    edge_ages = np.array([-0.01, 0.0, 0.25, 0.999, 1.0, 9.999, 10.0, 10.01, 12.0], np.float32)
    items = [
        ModelInput(rng.integers(1, vocab, 9).astype(np.int64),
                   rng.normal(0, 1, 9).astype(np.float32), edge_ages,
                   rng.normal(0, 1, len(card.static)).astype(np.float32)),
        ModelInput(np.full(40, 2, np.int64), rng.normal(0, 1, 40).astype(np.float32),
                   np.sort(rng.uniform(0, 10, 40)).astype(np.float32),
                   rng.normal(0, 1, len(card.static)).astype(np.float32)),
        ModelInput(rng.integers(1, vocab, card.max_events).astype(np.int64),
                   rng.normal(0, 1, card.max_events).astype(np.float32),
                   np.sort(rng.uniform(0, 10, card.max_events)).astype(np.float32),
                   rng.normal(0, 1, len(card.static)).astype(np.float32)),
    ]
    # Invalid events around valid ones of the same code: a future HbA1c before the latest
    # valid one, results past the window after it, and a code with nothing valid.
    items.append(ModelInput(np.array([2, 2, 3, 4, 3, 2], np.int64),
                            rng.normal(0, 1, 6).astype(np.float32),
                            np.array([-0.5, 0.1, 0.5, 10.2, 10.5, 12.0], np.float32),
                            rng.normal(0, 1, len(card.static)).astype(np.float32)))
    # One batch: the short ones are padded (code 0) to 2,048 events.
    got = OnnxRuntimeEngine(card).infer(collate(card, items))
    assert np.max(np.abs(got - reference_risk(card, items))) < 1e-4
