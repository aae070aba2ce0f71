"""The synthetic cohort: deterministic, plausible, labelled as documented."""

from __future__ import annotations

import numpy as np

from engines.training.cohort import generate


def test_same_seed_same_patients_other_seed_other_patients() -> None:
    a, b, c = generate(50, seed=5), generate(50, seed=5), generate(50, seed=6)
    assert [(p.sex, p.age, len(p.events), p.label) for p in a] == \
        [(p.sex, p.age, len(p.events), p.label) for p in b]
    assert [p.age for p in a] != [p.age for p in c]


def test_cohort_is_plausible() -> None:
    patients = generate(2000, seed=11)
    ages = np.array([p.age for p in patients])
    assert 25 <= ages.min() and ages.max() <= 80
    eligible = [p for p in patients if not p.prevalent]
    rate = np.mean([p.label for p in eligible])
    assert 0.03 < rate < 0.12  # onset within 12 months among those without diabetes
    assert not any(p.label and p.prevalent for p in patients)
    for p in patients[:200]:
        times = [e.time for e in p.events]
        assert times == sorted(times) and max(times) <= p.index_date
        diagnosed = any(e.name == "dx_t2d" for e in p.events)
        assert diagnosed == p.diagnosed
    a1c = [e.value for p in patients for e in p.events if e.name == "hba1c"]
    assert 4.0 < float(np.median(a1c)) < 6.5


def test_risk_factors_raise_the_label_rate() -> None:
    patients = [p for p in generate(4000, seed=3) if not p.prevalent]
    def rate(group: list) -> float:  # type: ignore[type-arg]
        return float(np.mean([p.label for p in group]))
    gdm = [p for p in patients if any(e.name == "dx_gdm" for e in p.events)]
    others = [p for p in patients if p.sex == "F" and p not in gdm]
    assert rate(gdm) > rate(others)
    high_a1c = [p for p in patients if any(e.name == "hba1c" and (e.value or 0) >= 6.0
                                           for e in p.events)]
    assert rate(high_a1c) > 3 * rate(patients)
