"""Feeds unlike ours: the external site's coding reaches the model as ours does, and the
shift check (app/clinic/shift.py, `clarion model shift`) runs through the HL7 chain."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from app.clinic.shift import EXTERNAL_SITE, evaluate_site, through_hl7
from engines.card import load_card
from engines.inputs import encode, history_from_events
from engines.training.cohort import EXTERNAL, HOME, generate, varied
from engines.training.feed import EXTERNAL_CODING, feed

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def test_an_external_sites_feed_reaches_the_model_as_the_generator_meant(tmp_path: Path) -> None:
    """Other LOINC codes, mmol units, weight and height in kg/lb and cm/in instead of BMI,
    SNOMED CT diagnoses in DG1 and in PRB problem lists: every event arrives, mapped."""
    card = load_card("t2d")
    patients = [p for p in generate(40, seed=33, index_date=NOW, observation=EXTERNAL)
                if not p.prevalent]
    text = b"".join(feed(patients, coding=EXTERNAL_CODING))
    for variant in (b"^SCT", b"PRB|AD|", b"PPR^PC1", b"29463-7", b"8302-2", b"[lb_av]",
                    b"[in_i]", b"59261-8", b"mmol/mol", b"mmol/L"):
        assert variant in text, variant  # the test exercises each variant
    assert b"39156-5" in text  # and some patients still send a BMI
    got_all = through_hl7(card, patients, EXTERNAL_CODING, tmp_path)
    for p, got in zip(patients, got_all, strict=True):
        expected = encode(card, history_from_events(
            card, [(e.name, e.time.timestamp(), e.value) for e in p.events],
            p.sex, p.birth_date.date(), p.ethnicity), NOW)
        order_e = np.lexsort((expected.values, expected.codes, expected.ages))
        order_g = np.lexsort((got.values, got.codes, got.ages))
        assert np.array_equal(expected.codes[order_e], got.codes[order_g]), p.pid
        # Rounding on the wire: HbA1c in whole mmol/mol (0.046 %), BMI from weight to
        # 0.1 kg (or lb) and height to 1 cm (or 0.1 in): 0.25 kg/m2 at most.
        code = expected.codes[order_e]
        tolerance = np.select(
            [code == card.code("hba1c"), code == card.code("bmi")],
            [0.0462 / card.numeric["hba1c"].sd, 0.25 / card.numeric["bmi"].sd], 0.05)
        assert np.all(np.abs(expected.values[order_e] - got.values[order_g]) <= tolerance)
        np.testing.assert_allclose(expected.ages[order_e], got.ages[order_g], atol=1e-4)
        np.testing.assert_allclose(expected.static, got.static, atol=1e-3)


def test_sites_observe_differently_and_home_is_unchanged() -> None:
    home = generate(300, seed=4)
    assert [len(p.events) for p in home] == [len(p.events) for p in generate(300, seed=4,
                                                                             observation=HOME)]
    external = generate(300, seed=4, observation=EXTERNAL)
    ages = [p.age for p in external]
    assert min(ages) < 25 and max(ages) > 80  # outside the training ages
    per_year = [sum(e.name == "visit" for e in p.events) / max(
        (p.index_date - p.events[0].time).days / 365.25, 0.5) for p in external]
    home_per_year = [sum(e.name == "visit" for e in p.events) / max(
        (p.index_date - p.events[0].time).days / 365.25, 0.5) for p in home]
    assert np.median(per_year) < np.median(home_per_year)
    share = lambda ps, n: np.mean([any(e.name == n for e in p.events) for p in ps])  # noqa: E731
    assert share(external, "sbp") < share(home, "sbp")
    assert share(external, "chol") < share(home, "chol")
    mixed = generate(300, seed=4, observation=varied)
    assert len({len(p.events) for p in mixed}) > 1 and \
        [len(p.events) for p in mixed] != [len(p.events) for p in home]


@pytest.mark.slow
def test_shift_check_runs_through_the_chain_and_lands_in_card_and_report(
        tmp_path: Path) -> None:
    from app.cli import main
    from engines.report import write_report

    folder = tmp_path / "t2d"
    shutil.copytree(load_card("t2d").directory, folder)
    site = evaluate_site(load_card(folder), EXTERNAL_SITE, 150, seed=9)
    assert site["patients"] > 100 and site["positive"] >= 1
    assert set(site["metrics"]) == {"model", "logistic_latest", "ada_points"}
    assert 0.5 < site["metrics"]["model"]["auroc"] <= 1.0
    code = main(["model", "shift", str(folder), "--patients", "150", "--write-card"])
    card = json.loads((folder / "card.json").read_text())
    assert code in (0, 1) and [s["site"] for s in card["shift"]["sites"]] == [
        "in-distribution", "shifted"]
    assert code == (0 if card["shift"]["gap_met"] and card["shift"]["beats_baselines"] else 1)
    report = write_report(load_card(folder), tmp_path / "report", 600).read_text()
    assert "## On feeds unlike ours" in report and "| shifted (" in report
