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
    """The card's validation patients (ragged arrays in validation.npz) and their labels,
    laid out for the engines once here (the gate scores them with every engine)."""
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


def score_all(engine: Engine, inputs: list[ModelInput], batch: int = 32) -> np.ndarray:
    return np.concatenate([engine.infer(collate(engine.card, inputs[i:i + batch]))
                           for i in range(0, len(inputs), batch)])


def run_gate(card: ModelCard, reference: Engine, candidate: Engine,
             limit: int | None = None,
             validation: tuple[list[ModelInput], np.ndarray] | None = None) -> GateResult:
    """Compare `candidate` with `reference` on the validation patients."""
    inputs, labels = validation or load_validation(card)
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
