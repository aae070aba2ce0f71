"""The beat model's inputs (engines/signals.py): the template channel and the RR features a
card names, shared by training and the app."""

from __future__ import annotations

import numpy as np
import pytest

from engines.signals import (
    FIRST_RR,
    SignalSpec,
    TimingRule,
    beat_inputs,
    by_timing,
    reference_rr,
    regular_share,
    rr_features,
    template_blocks,
    with_template,
)

RATE = 360.0


def test_template_blocks_leave_no_short_block() -> None:
    assert template_blocks(100, 64) == [(0, 64), (64, 100)]  # 36 beats: a block of its own
    assert template_blocks(90, 64) == [(0, 90)]  # 26 beats would be too few: joined
    assert template_blocks(30, 64) == [(0, 30)]  # a strip shorter than a block
    assert template_blocks(0, 64) == []
    assert template_blocks(10, 0) == [(0, 10)]


def test_the_template_channel_is_the_beat_less_its_blocks_median() -> None:
    rng = np.random.default_rng(3)
    usual = rng.normal(size=256).astype(np.float32)
    odd = (usual + 2.0 * np.hanning(256)).astype(np.float32)  # a wide, different beat
    windows = np.stack([usual] * 39 + [odd])[:, None, :]
    out = with_template(windows, 64)
    assert out.shape == (40, 2, 256)
    np.testing.assert_array_equal(out[:, 0], windows[:, 0])  # the beat itself, unchanged
    np.testing.assert_allclose(out[:39, 1], 0.0, atol=1e-6)  # the usual beat: no difference
    assert np.abs(out[39, 1]).max() > 1.5  # the odd one stands out


def _peaks(rr_s: list[float]) -> np.ndarray:
    return np.round(np.cumsum([0.5] + rr_s) * RATE).astype(np.int64)


def test_rr_features_are_the_named_ones_in_the_cards_order() -> None:
    # A regular 0.8-s rhythm with one beat 0.5 s early (and the pause after it).
    rr = [0.8] * 20 + [0.5, 1.1] + [0.8] * 20
    peaks = _peaks(rr)
    names = ("pre_over_median", "post_over_median", "pre_rr")
    features = rr_features(peaks, RATE, names, template_beats=64)
    assert features.shape == (len(peaks), 3)
    early = 21  # the beat after 21 intervals
    assert features[early, 0] == pytest.approx(0.5 / 0.8, abs=0.01)
    assert features[early, 1] == pytest.approx(1.1 / 0.8, abs=0.01)
    assert features[early, 2] == pytest.approx(0.5, abs=0.01)
    assert features[10, 0] == pytest.approx(1.0, abs=0.01)
    # The first model's six, by default, are unchanged in order.
    default = rr_features(peaks, RATE)
    assert default.shape == (len(peaks), len(FIRST_RR))
    assert default[early, FIRST_RR.index("pre_rr")] == pytest.approx(0.5, abs=0.01)


def test_beat_inputs_follow_the_spec() -> None:
    cleaned = np.zeros(int(30 * RATE))
    peaks = _peaks([0.8] * 35)
    cleaned[peaks] = 1.0
    spec = SignalSpec(RATE, (0.5, 40.0), window=(90, 166), template_beats=64,
                      rr=("pre_over_local", "post_over_median"))
    inputs = beat_inputs(cleaned, peaks, RATE, spec)
    assert inputs["beat"].shape == (len(peaks), 2, 256)
    assert inputs["rr"].shape == (len(peaks), 2)
    first = SignalSpec(RATE, (0.5, 40.0), window=(90, 166))
    assert beat_inputs(cleaned, peaks, RATE, first)["beat"].shape == (len(peaks), 1, 256)


def test_the_card_block_round_trips_and_names_an_unknown_feature() -> None:
    spec = SignalSpec(RATE, (0.5, 40.0), window=(90, 166), template_beats=64,
                      rr=("pre_over_local", "pre_over_median"))
    assert SignalSpec.from_card(spec.to_card()) == spec
    old = {"rate_hz": 360.0, "band_hz": [0.5, 40.0], "window": [90, 166]}  # the first card
    assert SignalSpec.from_card(old).rr == FIRST_RR
    assert SignalSpec.from_card(old).beat_channels == 1
    with pytest.raises(ValueError, match=r"signal.rr names \['qrs_width'\].*update Clarion"):
        SignalSpec.from_card({**old, "rr": ["pre_rr", "qrs_width"]})


def test_a_detectors_wandering_marks_are_moved_onto_the_peak() -> None:
    """Pan-Tompkins marks a beat up to ~50 ms from its R peak, differently beat to beat;
    aligned on the peak, a regular strip's beats match their template again."""
    from engines.signals import on_the_peak

    rng = np.random.default_rng(5)
    beat = -0.3 * np.exp(-((np.arange(256) - 120) / 12.0) ** 2)
    beat[90] = 1.0  # the R peak, the largest deflection, 90 samples into the window
    true = np.arange(40) * 290 + 200
    cleaned = np.zeros(true[-1] + 400)
    for peak in true:
        cleaned[peak - 90:peak + 166] += beat
    marks = true + rng.integers(-18, 19, len(true))
    np.testing.assert_array_equal(on_the_peak(cleaned, marks, RATE), true)
    spec = SignalSpec(RATE, (0.5, 40.0), window=(90, 166), template_beats=64)
    assert np.abs(beat_inputs(cleaned, marks, RATE, spec)["beat"][:, 1]).max() < 1e-6


def test_the_reference_cycle_is_the_unhurried_one_even_where_early_beats_are_most() -> None:
    # Sinus cycles of 1.8 s, each followed by a run of premature beats at 0.72 s: three in
    # four beats are early, so their median is the early interval; the reference is not.
    rr = ([1.8] + [0.72] * 3) * 12
    peaks = _peaks(rr)
    assert np.median(np.diff(peaks)) / RATE == pytest.approx(0.72, abs=0.01)
    assert reference_rr(peaks, RATE, 64) == pytest.approx(np.full(len(peaks), 1.8), abs=0.01)


def test_regular_share_tells_recurring_early_beats_from_fibrillation() -> None:
    rng = np.random.default_rng(5)
    sinus_with_runs = _peaks(([1.8] + [0.72] * 3) * 12)
    fibrillation = _peaks(list(rng.uniform(0.45, 1.1, size=48)))
    sinus = _peaks(list(0.8 + rng.normal(0, 0.015, size=48)))
    assert regular_share(sinus, RATE, 64).min() > 0.95
    assert regular_share(sinus_with_runs, RATE, 64).min() > 0.7
    assert regular_share(fibrillation, RATE, 64).max() < 0.4


N, S, V = 0, 1, 2
CLASSES = ("N", "S", "V", "F", "Q")
RULE = TimingRule(max_pre_over_ref=0.65, max_af_regular_share=0.5)


def test_by_timing_calls_the_early_narrow_beats_s_and_nothing_else() -> None:
    rr = [0.8] * 20 + [0.45, 1.15] + [0.8] * 10 + [0.45, 1.15] + [0.8] * 10
    peaks = _peaks(rr)
    network = np.full(len(peaks), N)
    network[5] = S  # the network's own S call on a beat in time: not kept
    network[33] = V  # an early beat the network calls V stays V
    out = by_timing(network, peaks, RATE, CLASSES, RULE, 64, None)
    assert out[21] == S and out[33] == V  # the beats after the 21st and 33rd intervals
    assert out[5] == N
    assert set(np.flatnonzero(out == S)) == {21}
    assert network[5] == S, "the network's calls are not changed in place"


def _af_seconds(peaks: np.ndarray, until_s: float | None = None) -> np.ndarray:
    """Per second of the strip, the rhythm model's AF call: AF throughout, or up to
    `until_s`."""
    seconds = np.arange(int(peaks[-1] // RATE) + 1)
    return seconds < (until_s if until_s is not None else len(seconds))


def test_by_timing_finds_early_beats_that_are_most_of_the_beats() -> None:
    peaks = _peaks(([1.8] + [0.72] * 3) * 12)
    out = by_timing(np.full(len(peaks), N), peaks, RATE, CLASSES, RULE, 64,
                    _af_seconds(peaks))  # even where the rhythm model says AF
    early = np.diff(peaks) / RATE < 1.0
    assert np.all(out[1:][early] == S) and np.all(out[1:][~early] == N)


def test_by_timing_calls_no_beat_early_in_atrial_fibrillation() -> None:
    rng = np.random.default_rng(5)
    peaks = _peaks(list(rng.uniform(0.45, 1.1, size=60)))
    network = np.full(len(peaks), N)
    in_af = by_timing(network, peaks, RATE, CLASSES, RULE, 64, _af_seconds(peaks))
    assert np.all(in_af == N)
    # AF called for the first 20 s only: early beats after it are S, none before.
    half = by_timing(network, peaks, RATE, CLASSES, RULE, 64, _af_seconds(peaks, 20.0))
    assert np.all(half[peaks < 20 * RATE] == N) and np.any(half[peaks >= 20 * RATE] == S)
    # Without the rhythm model's word, the same irregular beats are taken at their timing.
    assert np.any(by_timing(network, peaks, RATE, CLASSES, RULE, 64, None) == S)


def test_the_timing_rule_round_trips_through_the_card() -> None:
    block = RULE.to_card()
    assert block["by"] == "timing"
    assert TimingRule.from_card(block) == RULE
    with pytest.raises(KeyError, match="max_af_regular_share"):
        TimingRule.from_card({"max_pre_over_ref": 0.65})
