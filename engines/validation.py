"""The validation gate every engine other than the reference must pass before it is used.

On the card's validation patients, against ONNX Runtime FP32: the largest absolute
difference in risk, the mean Bernoulli KL divergence, and the drop in AUROC. An engine
that fails is refused, the reference is used, and the reason is logged and shown by
`clarion engines`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.base import Engine
from engines.card import ModelCard
from engines.inputs import ModelInput, by_code, collate

MAX_MEAN_KL = 0.05
MAX_AUROC_DROP = 0.005
MAX_ABS_DIFF = 0.10  # also gated: one patient scored far off is a broken engine for them


@dataclass(frozen=True, slots=True)
class GateResult:
    """The comparison and its verdict."""

    engine: str
    patients: int
    max_abs_diff: float
    mean_kl: float
    auroc_reference: float
    auroc_candidate: float
    passed: bool
    reason: str

    @property
    def auroc_drop(self) -> float:
        return self.auroc_reference - self.auroc_candidate


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    labels = labels.astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def bernoulli_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    eps = 1e-7
    p, q = np.clip(p, eps, 1 - eps), np.clip(q, eps, 1 - eps)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def load_validation(card: ModelCard) -> tuple[list[ModelInput], np.ndarray]:
    """For a classifier: its gate inputs as batches (in the first slot), no labels. Else:
    the card's validation patients (ragged arrays in validation.npz) and their labels,
    laid out for the engines once here (the gate scores them with every engine)."""
    if card.is_classifier:
        return _signal_batches(card), np.zeros(0, dtype=np.int64)  # type: ignore[return-value]
    # Each NpzFile item access decompresses the array anew: read every array once.
    with np.load(card.path("validation")) as data:
        arrays = {k: data[k] for k in ("lengths", "codes", "values", "ages", "static", "labels")}
    inputs, start = [], 0
    for row, n in enumerate(arrays["lengths"]):
        end = start + int(n)
        inputs.append(by_code(card, ModelInput(
            arrays["codes"][start:end], arrays["values"][start:end], arrays["ages"][start:end],
            arrays["static"][row])))
        start = end
    return inputs, arrays["labels"].astype(np.int64)


def _signal_batches(card: ModelCard, batch: int = 64) -> list[dict[str, np.ndarray]]:
    """An ECG model's gate inputs (synthetic ECGs, engines/training/ecg_train.py) in
    batches."""
    with np.load(card.path("validation")) as data:
        arrays = {name: data[name] for name in card.input_names}
    n = len(next(iter(arrays.values())))
    return [{k: v[i:i + batch] for k, v in arrays.items()} for i in range(0, n, batch)]


def categorical_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) per row of class probabilities."""
    eps = 1e-7
    p, q = np.clip(p, eps, 1.0), np.clip(q, eps, 1.0)
    return np.sum(p * np.log(p / q), axis=1)


def macro_f1(labels: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """Mean F1 over the classes present in `labels` (percent)."""
    scores = []
    for c in np.unique(labels):
        tp = np.sum((predicted == c) & (labels == c))
        called, support = np.sum(predicted == c), np.sum(labels == c)
        scores.append(200.0 * tp / (called + support) if called + support else 0.0)
    return float(np.mean(scores)) if scores else 100.0


MAX_F1_DROP = 0.8  # points of macro-F1, a classifier's candidate against FP32's calls


def _run_class_gate(card: ModelCard, reference: Engine, candidate: Engine,
                    batches: list[dict[str, np.ndarray]]) -> GateResult:
    """A classifier's candidate against the reference on the gate inputs: the mean KL of
    its class probabilities, and the macro-F1 of its calls against the reference's."""
    ref = np.concatenate([reference.infer(b) for b in batches])
    cand = np.concatenate([candidate.infer(b) for b in batches])
    kl = float(np.mean(categorical_kl(ref, cand)))
    calls = ref.argmax(1)
    drop = 100.0 - macro_f1(calls, cand.argmax(1), len(card.classes))
    max_abs = float(np.max(np.abs(ref - cand)))
    problems = []
    if not np.all(np.isfinite(cand)):
        problems.append("non-finite probabilities")
    if kl >= MAX_MEAN_KL:
        problems.append(f"mean KL {kl:.4f} >= {MAX_MEAN_KL}")
    if drop >= MAX_F1_DROP:
        problems.append(f"macro-F1 against FP32's calls {100 - drop:.2f} (drop {drop:.2f} "
                        f">= {MAX_F1_DROP} points)")
    reason = "; ".join(problems) or (
        f"passed: mean KL {kl:.5f}, macro-F1 drop {drop:.2f} points against FP32's calls on "
        f"{len(ref)} gate inputs")
    return GateResult(candidate.name, len(ref), max_abs, kl, 100.0, 100.0 - drop,
                      not problems, reason)


def score_all(engine: Engine, inputs: list[ModelInput], batch: int = 32) -> np.ndarray:
    return np.concatenate([engine.infer(collate(engine.card, inputs[i:i + batch]))
                           for i in range(0, len(inputs), batch)])


def run_gate(card: ModelCard, reference: Engine, candidate: Engine,
             limit: int | None = None,
             validation: tuple[list[ModelInput], np.ndarray] | None = None) -> GateResult:
    """Compare `candidate` with `reference` on the validation patients (a classifier: on
    its gate inputs)."""
    inputs, labels = validation or load_validation(card)
    if card.is_classifier:
        return _run_class_gate(card, reference, candidate, inputs)  # type: ignore[arg-type]
    if limit is not None:
        inputs, labels = inputs[:limit], labels[:limit]
    ref = score_all(reference, inputs)
    cand = score_all(candidate, inputs)
    max_abs = float(np.max(np.abs(ref - cand)))
    mean_kl = float(np.mean(bernoulli_kl(ref, cand)))
    auc_ref, auc_cand = auroc(labels, ref), auroc(labels, cand)
    problems = []
    if not np.all(np.isfinite(cand)):
        problems.append("non-finite risks")
    if mean_kl >= MAX_MEAN_KL:
        problems.append(f"mean KL {mean_kl:.4f} >= {MAX_MEAN_KL}")
    if auc_ref - auc_cand > MAX_AUROC_DROP:
        problems.append(f"AUROC drop {auc_ref - auc_cand:.4f} > {MAX_AUROC_DROP}")
    if max_abs > MAX_ABS_DIFF:
        problems.append(f"max |difference| {max_abs:.4f} > {MAX_ABS_DIFF}")
    reason = "; ".join(problems) or (
        f"passed: max |diff| {max_abs:.4f}, mean KL {mean_kl:.5f}, AUROC drop "
        f"{auc_ref - auc_cand:+.4f} on {len(inputs)} validation patients")
    return GateResult(candidate.name, len(inputs), max_abs, mean_kl, auc_ref, auc_cand,
                      not problems, reason)
