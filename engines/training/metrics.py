"""Discrimination, calibration and subgroup metrics for the model card and the report."""

from __future__ import annotations

from typing import Any

import numpy as np

from engines.training.cohort import SyntheticPatient

AGE_BANDS = ((25, 45), (45, 65), (65, 81))


def expected_calibration_error(risk: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-width risk bins: sum of |observed - predicted| weighted by bin size."""
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(risk, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(labels[mask].mean() - risk[mask].mean())
    return float(total)


def reliability(risk: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per risk decile of the predictions: mean predicted vs observed rate."""
    order = np.argsort(risk)
    out = []
    for chunk in np.array_split(order, bins):
        if len(chunk):
            out.append({"predicted": float(risk[chunk].mean()),
                         "observed": float(labels[chunk].mean()), "n": int(len(chunk))})
    return out


POINT_SCORES = frozenset({"ada_points"})  # ranks patients, is not a probability


def evaluate(risks: dict[str, np.ndarray], labels: np.ndarray,
             patients: list[SyntheticPatient]) -> dict[str, Any]:
    """AUROC, AUPRC, ECE and Brier (for probabilities: all but POINT_SCORES), and subgroup
    AUROC by sex and age band."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    sexes = np.array([p.sex for p in patients])
    ages = np.array([p.age for p in patients])
    out: dict[str, Any] = {}
    for name, risk in risks.items():
        entry: dict[str, Any] = {"auroc": round(float(roc_auc_score(labels, risk)), 4),
                                 "auprc": round(float(average_precision_score(labels, risk)), 4)}
        if name not in POINT_SCORES:
            entry["ece"] = round(expected_calibration_error(risk, labels), 4)
            entry["brier"] = round(float(brier_score_loss(labels, risk)), 4)
        groups: dict[str, float | None] = {}
        for sex in ("F", "M"):
            mask = sexes == sex
            groups[f"sex {sex}"] = _auc(labels[mask], risk[mask])
        for lo, hi in AGE_BANDS:
            mask = (ages >= lo) & (ages < hi)
            groups[f"age {lo}-{hi - 1}"] = _auc(labels[mask], risk[mask])
        entry["subgroup_auroc"] = groups
        out[name] = entry
    return out


def _auc(labels: np.ndarray, risk: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    if len(set(labels.tolist())) < 2:
        return None
    return round(float(roc_auc_score(labels, risk)), 4)
