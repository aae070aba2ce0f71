"""Scoring a stored patient: features → engine → risk, tier, reasons in a doctor's words.

Besides the model's risk, two rules sit beside it:
- diabetes on record (E08-E14) puts the patient outside the model's intended use: no risk
  is computed, and the result says so;
- a stored HbA1c >= 6.5 % or fasting glucose >= 126 mg/dL with no diagnosis is its own
  finding, "possible undiagnosed diabetes: confirm", reported beside the risk.

Top factors come from occlusion: the patient is scored again with each feature group
removed, all in one batched call, and the groups whose removal lowers the risk most are
named with their values. A group that removes nothing (no such events on record, static
inputs already at the reference value) is not scored again: its row would be the patient's
own, and most patients have only a few of the groups, so the call is about half as large.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from app.clinic.features import FeatureCache, PatientFeatures
from app.ecg.analysis import Strip
from engines.base import Engine
from engines.card import ModelCard
from engines.inputs import ModelInput, collate

UNDIAGNOSED_HBA1C = 6.5
UNDIAGNOSED_FPG = 126.0

# Occlusion groups: (label, vocabulary names, static inputs reset to the reference value).
GROUPS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("HbA1c", ("hba1c",), ()),
    ("Glucose", ("fpg", "glucose"), ()),
    ("BMI", ("bmi", "dx_obesity"), ()),
    ("Blood pressure", ("sbp", "dbp", "dx_htn"), ()),
    ("Lipids", ("chol", "hdl", "ldl", "tg"), ()),
    ("Prediabetes", ("dx_prediabetes",), ()),
    ("Gestational diabetes", ("dx_gdm",), ()),
    ("PCOS", ("dx_pcos",), ()),
    ("Family history", ("dx_famhx",), ()),
    ("Severe mental illness", ("dx_smi",), ()),
    ("Age", (), ("age",)),
    ("Ethnicity", (), ("eth_south_asian", "eth_black", "eth_east_asian", "eth_other")),
)


@dataclass(frozen=True, slots=True)
class Factor:
    """One reason the risk is what it is."""

    group: str
    words: str  # e.g. "HbA1c 6.3 % (5.9 % a year ago)"
    contribution: float  # risk with the group minus risk without it


@dataclass(frozen=True, slots=True)
class Score:
    """The result for one label of one patient."""

    label: str
    display: str
    risk: float | None  # None when outside the intended use
    tier: str  # "high", "elevated", "low", or "not-applicable"
    tier_words: str
    factors: tuple[Factor, ...]
    finding: str = ""  # e.g. "possible undiagnosed diabetes: confirm (HbA1c 6.8 % ...)"
    out_of_scope: str = ""
    # A recording's models (app/clinic/ecg.py): what the risk means in words ("AF in 27
    # of 30 s, irregular RR"), the class probabilities or beat counts, the recording's
    # time, and the excerpt to draw.
    summary: str = ""
    classes: dict[str, float] = field(default_factory=dict)
    at: datetime | None = None
    strip: Strip | None = None

    @property
    def statement(self) -> str:
        """The result in a sentence: the risk and its horizon, or the recording's finding."""
        if self.summary:
            return self.summary
        if self.risk is None:
            return self.finding or self.out_of_scope
        return f"{self.display} risk {self.risk:.0%} within 12 months"


@dataclass
class ScoreResult:
    """All scores for a patient, the engine used, and the time of each stage in ms."""

    patient_id: int
    scores: list[Score]
    engine: str
    model: str
    latency_ms: dict[str, float] = field(default_factory=dict)
    features: PatientFeatures | None = None  # what was scored (for the alert rules)


def _ago(now: datetime, then: datetime) -> str:
    days = (now - then).days
    if days < 45:
        return f"{max(days, 0)} days ago"
    if days < 330:
        return f"{round(days / 30.4)} months ago"
    years = round(days / 365.25)
    return "a year ago" if years == 1 else f"{years} years ago"


def _fmt(name: str, value: float) -> str:
    unit = {"hba1c": " %", "fpg": " mg/dL", "glucose": " mg/dL", "bmi": "", "chol": " mg/dL",
            "hdl": " mg/dL", "ldl": " mg/dL", "tg": " mg/dL"}.get(name, "")
    return f"{value:.1f}{unit}" if name in ("hba1c", "bmi") else f"{value:.0f}{unit}"


def describe_group(group: str, names: tuple[str, ...], features: PatientFeatures,
                   now: datetime) -> str:
    """The group in words, with the values behind it."""
    if group == "Age" and features.birth_date:
        return f"Age {int((now.date() - features.birth_date).days / 365.25)}"
    if group == "Ethnicity":
        return f"Ethnicity ({features.ethnicity.replace('_', ' ')})"
    if group == "Blood pressure":
        sbp, dbp = features.values_of("sbp"), features.values_of("dbp")
        if sbp and dbp:
            text = f"Blood pressure {sbp[0][1]:.0f}/{dbp[0][1]:.0f} mm Hg"
            return text + (" (hypertension on record)" if features.has("dx_htn") else "")
        return "Hypertension on record"
    for name in names:
        values = features.values_of(name)
        if values:
            label = {"hba1c": "HbA1c", "fpg": "Fasting glucose", "glucose": "Glucose",
                     "bmi": "BMI", "chol": "Cholesterol", "hdl": "HDL", "ldl": "LDL",
                     "tg": "Triglycerides"}.get(name, name)
            text = f"{label} {_fmt(name, values[0][1])}"
            earlier = [v for v in values[1:] if (values[0][0] - v[0]).days >= 180]
            if earlier:
                text += f" ({_fmt(name, earlier[0][1])} {_ago(now, earlier[0][0])})"
            return text
    return f"{group} on record"


def _occlude(card: ModelCard, item: ModelInput, names: tuple[str, ...],
             static: tuple[str, ...]) -> ModelInput:
    """`item` without the group's events and with its static inputs at the reference value
    (0); `item` itself when that changes nothing."""
    dropped = np.zeros(len(card.vocabulary), dtype=bool)
    dropped[[card.code(n) for n in names if n in card.vocabulary]] = True
    keep = ~dropped[item.codes]  # a table lookup per event, not a set search
    new_static = item.static.copy()
    for name in static:
        new_static[card.static.index(name)] = 0.0
    if keep.all() and np.array_equal(new_static, item.static):
        return item
    return replace(item, codes=item.codes[keep], values=item.values[keep],
                   ages=item.ages[keep], static=new_static)


class Scorer:
    """Scores patients with one model and one engine."""

    def __init__(self, card: ModelCard, engine: Engine, cache: FeatureCache) -> None:
        self.card = card
        self.engine = engine
        self.cache = cache
        # An engine may not run two batches at once (a TensorRT execution context): held
        # for the inference only, so the patient view scores beside the feed.
        self._engine_lock = threading.Lock()

    def score(self, patient_id: int, now: datetime, with_factors: bool = True) -> ScoreResult:
        started = time.perf_counter()
        features = self.cache.get(patient_id)
        item = features.inputs(self.card, now)
        t_features = time.perf_counter()
        finding = self._finding(features, now)
        card = self.card
        if features.diabetes_on_record:
            score = Score(card.label, card.display, None, "not-applicable",
                          "Outside the model's intended use", (), finding,
                          "diabetes on record (E10-E14): the risk model does not apply")
            return ScoreResult(patient_id, [score], self.engine.name,
                               f"{card.id} {card.version}", {
                                   "features": (t_features - started) * 1000,
                                   "inference": 0.0}, features)
        rows = [item]
        groups = [g for g in GROUPS if with_factors]
        row_of = []  # each group's row in the batch; 0 (the patient's) if it removes nothing
        for _, names, static in groups:
            occluded = _occlude(card, item, names, static)
            if occluded is item:
                row_of.append(0)
            else:
                rows.append(occluded)
                row_of.append(len(rows) - 1)
        batch = collate(card, rows)
        with self._engine_lock:
            risks = self.engine.infer(batch)
        t_infer = time.perf_counter()
        risk = float(risks[0])
        factors = []
        for (group, names, _static), row in zip(groups, row_of, strict=True):
            delta = risk - float(risks[row])  # row 0: the group removes nothing, delta 0
            if delta > 0.005:
                factors.append(Factor(group, describe_group(group, names, features, now), delta))
        factors.sort(key=lambda f: f.contribution, reverse=True)
        tier = card.tier_for(risk)
        score = Score(card.label, card.display, risk, tier.name if tier else "low",
                      tier.words if tier else "Low risk", tuple(factors[:3]), finding)
        return ScoreResult(patient_id, [score], self.engine.name, f"{card.id} {card.version}",
                           {"features": (t_features - started) * 1000,
                            "inference": (t_infer - t_features) * 1000}, features)

    @staticmethod
    def _finding(features: PatientFeatures, now: datetime) -> str:
        if features.diabetes_on_record:
            return ""
        hits = []
        for name, limit, label, unit in (("hba1c", UNDIAGNOSED_HBA1C, "HbA1c", "%"),
                                         ("fpg", UNDIAGNOSED_FPG, "fasting glucose", "mg/dL")):
            for when, value in features.values_of(name):
                if value >= limit:
                    hits.append(f"{label} {value:.1f} {unit} {_ago(now, when)}")
                    break
        if not hits:
            return ""
        return "possible undiagnosed diabetes: confirm (" + "; ".join(hits) + \
            ", no diabetes diagnosis on record)"
