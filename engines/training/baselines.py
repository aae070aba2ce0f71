"""The two baselines the model must beat, on the same held-out patients.

- Logistic regression on the latest value of each input (plus ever-coded diagnoses and
  demographics): what a careful analyst would build first.
- The ADA risk test (Bang et al., Ann Intern Med 2009;151:775-783) as points: age (<40: 0,
  40-49: 1, 50-59: 2, >= 60: 3), male +1, gestational diabetes +1, family history +1,
  hypertension +1, BMI (25-29.9: 1, 30-39.9: 2, >= 40: 3). Physical activity is not in
  the feed and scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.card import ModelCard
from engines.inputs import ModelInput


def _latest(card: ModelCard, item: ModelInput, name: str) -> float | None:
    """The most recent value of `name` in card units (inputs are most recent first)."""
    hits = np.nonzero(item.codes == card.code(name))[0]
    if len(hits) == 0:
        return None
    spec = card.numeric[name]
    return float(item.values[hits[0]]) * spec.sd + spec.mean


def _ever(card: ModelCard, item: ModelInput, name: str) -> bool:
    return bool(np.any(item.codes == card.code(name)))


def latest_value_features(card: ModelCard, inputs: list[ModelInput]) -> np.ndarray:
    """Per patient: latest normalized value and a missing flag per numeric input,
    ever-coded diagnoses, and the static inputs."""
    numeric = list(card.numeric)
    diagnoses = [v for v in card.vocabulary if v.startswith("dx_")]
    rows = []
    for item in inputs:
        row: list[float] = []
        for name in numeric:
            hits = np.nonzero(item.codes == card.code(name))[0]
            row += [float(item.values[hits[0]]) if len(hits) else 0.0, float(len(hits) == 0)]
        row += [float(_ever(card, item, d)) for d in diagnoses]
        row += item.static.tolist()
        rows.append(row)
    return np.asarray(rows, dtype=np.float64)


@dataclass
class LogisticBaseline:
    """A fitted logistic regression, storable in the card."""

    coef: np.ndarray
    intercept: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(features @ self.coef + self.intercept)))

    def to_json(self) -> dict[str, object]:
        return {"coef": [round(float(c), 6) for c in self.coef],
                "intercept": round(self.intercept, 6),
                "features": "latest value + missing flag per numeric input, ever-coded "
                            "diagnoses, static inputs (engines/training/baselines.py)"}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LogisticBaseline:
        return cls(np.asarray(data["coef"], dtype=np.float64), float(data["intercept"]))  # type: ignore[arg-type]


def fit_logistic(card: ModelCard, _patients: object, inputs: list[ModelInput],
                 labels: np.ndarray) -> LogisticBaseline:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=2000).fit(
        latest_value_features(card, inputs), labels)
    return LogisticBaseline(model.coef_[0].astype(np.float64), float(model.intercept_[0]))


def ada_points(card: ModelCard, item: ModelInput) -> int:
    """The ADA risk test score (0-10 here; physical activity unknown)."""
    age = float(item.static[0]) * 15 + 50
    points = 0 if age < 40 else 1 if age < 50 else 2 if age < 60 else 3
    points += int(item.static[1] == 0)  # male
    points += int(_ever(card, item, "dx_gdm")) + int(_ever(card, item, "dx_famhx"))
    sbp = _latest(card, item, "sbp")
    points += int(_ever(card, item, "dx_htn") or (sbp is not None and sbp >= 140))
    bmi = _latest(card, item, "bmi")
    if bmi is not None:
        points += 0 if bmi < 25 else 1 if bmi < 30 else 2 if bmi < 40 else 3
    return points
