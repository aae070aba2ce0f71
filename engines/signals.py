"""From an ECG lead to the arrays the ECG models read: the encoding shared by training and
serving, as `engines/inputs.py` is for the timeline models.

The card says how its model was trained (`card.signal`): the sample rate, the filter, the
beat window and the strip length. The app (`app/ecg/`) picks the lead, resamples to that
rate, detects the QRS complexes and judges the signal's quality; what the network reads
is made here, so the training code and the app cannot drift apart.

Beat model (`ecg_beats`), one row per beat (`beat_inputs`):
  beat      float32 [B, C, W]  the filtered lead from `before` samples ahead of the R peak
                               to `after` samples past it, over the strip's R amplitude;
                               with a template (card `template_beats` > 0, C = 2), the
                               second channel is the beat less the median beat of its
                               block of `template_beats` beats: how it differs from the
                               patient's usual beat, whatever that looks like (a bundle-
                               branch block, an inverted lead)
  rr        float32 [B, F]     RR-interval features (the card's `rr`, named in
                               `RR_FEATURES`), the inter-patient standard (de Chazal
                               2004): the beat's own intervals against the local and the
                               recording's usual rhythm
Rhythm model (`ecg_rhythm`), one row per strip:
  strip     float32 [B, 1, L]  the filtered lead over its own standard deviation, zero
                               padded at the end to the card's length (at least)

Supraventricular premature beats (S) by timing (card `supraventricular`, `by_timing`): a
beat the network calls neither V nor F (nor Q) is S where it comes early against the
patient's unhurried cycle (`reference_rr`: the median of the longest fifth of its block's
intervals, the sinus cycle even where premature beats are most of the beats), except
where the rhythm is atrial fibrillation (no beat is premature in AF): where the rhythm
model calls the second AF and the intervals are irregular too (`regular_share`: in sinus
rhythm most intervals lie near the usual one, even with premature beats at one coupling
interval; in AF few do). The network's own S calls are not used: trained on DS1's 22
patients, it learnt S from their patterns and missed another patient's (the card's
metrics.model_alone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from engines.card import ModelCard
    from engines.inputs import GraphShapes

# Every RR feature a card may name; a card's `rr` lists those its model reads, in order.
# pre/post: the intervals before and after the beat (s); local: the mean of the ten around
# it; mean: the recording's mean; median: the median pre-interval of the beat's template
# block (robust to the pauses and runs that pull a mean).
RR_FEATURES = ("pre_rr", "post_rr", "local_rr", "pre_over_local", "post_over_local",
               "local_over_mean", "pre_over_median", "post_over_median")
FIRST_RR = RR_FEATURES[:6]  # the first beat model's (cards without `rr`)


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """How a card's model reads the ECG (the "signal" block of its card.json)."""

    rate_hz: float
    band_hz: tuple[float, float]
    window: tuple[int, int] = (0, 0)  # beats: samples before and after the R peak
    strip_s: float = 0.0  # rhythm: the strip length the model was trained on
    lead: str = "II"
    template_beats: int = 0  # beats: the block a beat's template is the median of (0: none)
    rr: tuple[str, ...] = FIRST_RR  # beats: the RR features, in the model's order

    @property
    def beat_channels(self) -> int:
        return 2 if self.template_beats else 1

    @classmethod
    def from_card(cls, block: dict) -> SignalSpec:
        rr = tuple(block.get("rr", FIRST_RR))
        unknown = [name for name in rr if name not in RR_FEATURES]
        if unknown:
            raise ValueError(f"card signal.rr names {unknown}, which this version does not "
                             f"compute (known: {', '.join(RR_FEATURES)}); update Clarion")
        return cls(float(block["rate_hz"]), (float(block["band_hz"][0]),
                                             float(block["band_hz"][1])),
                   tuple(block.get("window", (0, 0))),  # type: ignore[arg-type]
                   float(block.get("strip_s", 0.0)), str(block.get("lead", "II")),
                   int(block.get("template_beats", 0)), rr)

    def to_card(self) -> dict:
        return {"rate_hz": self.rate_hz, "band_hz": list(self.band_hz),
                "window": list(self.window), "strip_s": self.strip_s, "lead": self.lead,
                "template_beats": self.template_beats, "rr": list(self.rr)}


def resample(signal: np.ndarray, rate_hz: float, to_hz: float) -> np.ndarray:
    """Polyphase resampling (anti-aliased) between integer-ratio rates, e.g. 500 → 360 Hz."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    if rate_hz == to_hz:
        return np.asarray(signal, dtype=np.float64)
    ratio = Fraction(to_hz / rate_hz).limit_denominator(1000)
    return resample_poly(np.asarray(signal, dtype=np.float64), ratio.numerator,
                         ratio.denominator)


def clean(signal: np.ndarray, rate_hz: float, band_hz: tuple[float, float]) -> np.ndarray:
    """Baseline wander removed, then band-passed, both without phase shift.

    The baseline is two median filters in turn (200 ms, then 600 ms: the QRS complex, then
    the P and T waves, are removed from the estimate; de Chazal 2004), subtracted; then a
    second-order Butterworth band-pass run forwards and backwards (`sosfiltfilt`), which
    keeps the R peak where the detector found it."""
    from scipy.ndimage import median_filter
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(signal, dtype=np.float64)
    if len(x) < int(rate_hz):  # under a second: nothing a filter could settle on
        return x - np.median(x) if len(x) else x
    first = int(0.2 * rate_hz) | 1
    second = int(0.6 * rate_hz) | 1
    baseline = median_filter(median_filter(x, first, mode="nearest"), second, mode="nearest")
    sos = butter(2, [band_hz[0], band_hz[1]], btype="bandpass", fs=rate_hz, output="sos")
    return sosfiltfilt(sos, x - baseline)


def r_amplitude(cleaned: np.ndarray, peaks: np.ndarray) -> float:
    """The strip's typical |R| (median over its beats), the scale the beat windows share."""
    if len(peaks) == 0:
        return 1.0
    return float(max(np.median(np.abs(cleaned[peaks])), 1e-3))


def beat_windows(cleaned: np.ndarray, peaks: np.ndarray, window: tuple[int, int],
                 scale: float | None = None) -> np.ndarray:
    """[B, 1, W] windows around each R peak, zero where the strip ends."""
    before, after = window
    width = before + after
    padded = np.concatenate([np.zeros(before), cleaned, np.zeros(after)])
    index = np.asarray(peaks, dtype=np.int64)[:, None] + np.arange(width)[None, :]
    rows = padded[index] if len(peaks) else np.zeros((0, width))
    rows = rows - np.median(rows, axis=1, keepdims=True) if len(rows) else rows
    amp = scale if scale is not None else r_amplitude(cleaned, peaks)
    return (rows / amp).astype(np.float32)[:, None, :]


def template_blocks(n: int, size: int) -> list[tuple[int, int]]:
    """`n` beats in consecutive blocks of `size` (the last takes a short remainder: no
    block has fewer than size/2 beats unless the recording has)."""
    if n == 0 or size <= 0:
        return [(0, n)] if n else []
    blocks = []
    start = 0
    while start < n:
        end = min(n, start + size)
        if n - end < size // 2:
            end = n
        blocks.append((start, end))
        start = end
    return blocks


def with_template(windows: np.ndarray, size: int) -> np.ndarray:
    """[B, 1, W] beats → [B, 2, W]: each beat, and the beat less the median of its block."""
    out = np.empty((len(windows), 2, windows.shape[2]), dtype=np.float32)
    out[:, 0] = windows[:, 0]
    for start, end in template_blocks(len(windows), size):
        out[start:end, 1] = windows[start:end, 0] - np.median(windows[start:end, 0], axis=0)
    return out


def rr_features(peaks: np.ndarray, rate_hz: float, names: tuple[str, ...] = FIRST_RR,
                template_beats: int = 0, local_beats: int = 10) -> np.ndarray:
    """[B, len(names)]: the named RR features (`RR_FEATURES`) of each beat, clipped to
    [0, 5]. The first and last beats borrow their missing interval from their neighbour's.
    The median is over the beat's template block (`template_blocks`), or the recording's
    where the model has no template."""
    n = len(peaks)
    if n == 0:
        return np.zeros((0, len(names)), dtype=np.float32)
    if n == 1:
        return np.tile(np.ones(len(names), dtype=np.float32), (1, 1))
    pre = _pre_intervals(peaks, rate_hz)
    rr = pre[1:]
    post = np.concatenate([rr, [rr[-1]]])
    kernel = np.ones(local_beats) / local_beats
    padded = np.pad(pre, (local_beats // 2, local_beats - local_beats // 2 - 1), mode="edge")
    local = np.convolve(padded, kernel, mode="valid")
    median = np.empty(n)
    for start, end in template_blocks(n, template_beats or n):
        median[start:end] = np.median(pre[start:end])
    columns = {"pre_rr": pre, "post_rr": post, "local_rr": local,
               "pre_over_local": pre / local, "post_over_local": post / local,
               "local_over_mean": local / float(np.mean(rr)),
               "pre_over_median": pre / median, "post_over_median": post / median}
    features = np.stack([columns[name] for name in names], axis=1)
    return np.clip(features, 0.0, 5.0).astype(np.float32)


def reference_rr(peaks: np.ndarray, rate_hz: float, block: int,
                 fraction: float = 0.2) -> np.ndarray:
    """Each beat's reference cycle (s): the median of the longest `fraction` of the
    pre-intervals of its block (`template_blocks`; the recording where `block` is 0)."""
    pre = _pre_intervals(peaks, rate_hz)
    ref = np.empty(len(pre))
    for start, end in template_blocks(len(pre), block or len(pre)):
        longest = np.sort(pre[start:end])[-max(1, int(round(fraction * (end - start)))):]
        ref[start:end] = np.median(longest)
    return ref


def regular_share(peaks: np.ndarray, rate_hz: float, block: int,
                  within: float = 0.075) -> np.ndarray:
    """Per beat, the share of its block's pre-intervals within `within` of the block's
    median interval: near 1 in sinus rhythm, still most of them where premature beats
    recur at one coupling interval, around a third in atrial fibrillation."""
    pre = _pre_intervals(peaks, rate_hz)
    share = np.ones(len(pre))
    for start, end in template_blocks(len(pre), block or len(pre)):
        part = pre[start:end]
        median = float(np.median(part))
        share[start:end] = float(np.mean(np.abs(part - median) <= within * median))
    return share


def _pre_intervals(peaks: np.ndarray, rate_hz: float) -> np.ndarray:
    rr = np.diff(np.asarray(peaks, dtype=np.float64)) / rate_hz
    return np.concatenate([rr[:1], rr]) if len(rr) else np.ones(len(peaks))


@dataclass(frozen=True, slots=True)
class TimingRule:
    """The card's `supraventricular` block: S by timing (module docstring)."""

    max_pre_over_ref: float  # premature: the interval before is under this share of the cycle
    max_af_regular_share: float  # AF: the rhythm model says so and the rhythm is this irregular
    ref_fraction: float = 0.2
    regular_within: float = 0.075

    @classmethod
    def from_card(cls, block: dict) -> TimingRule:
        return cls(float(block["max_pre_over_ref"]), float(block["max_af_regular_share"]),
                   float(block.get("ref_fraction", 0.2)),
                   float(block.get("regular_within", 0.075)))

    def to_card(self) -> dict:
        return {"by": "timing", "max_pre_over_ref": self.max_pre_over_ref,
                "max_af_regular_share": self.max_af_regular_share,
                "ref_fraction": self.ref_fraction, "regular_within": self.regular_within}


def by_timing(calls: np.ndarray, peaks: np.ndarray, rate_hz: float, classes: tuple[str, ...],
              rule: TimingRule, block: int, af_seconds: np.ndarray | None) -> np.ndarray:
    """The network's `calls` (class indices, one per beat at `peaks`) with S decided by
    timing: its S calls become N, and an N beat that comes early is S unless it lies in
    AF. `af_seconds` is, per second of the strip, whether the rhythm model calls it AF
    (`rhythm_by_second`; None: no rhythm model, no beat is taken for AF)."""
    out = np.asarray(calls).copy()
    normal, early_class = classes.index("N"), classes.index("S")
    out[out == early_class] = normal
    if len(peaks) < 3:
        return out
    early = _pre_intervals(peaks, rate_hz) < rule.max_pre_over_ref * reference_rr(
        peaks, rate_hz, block, rule.ref_fraction)
    in_af = np.zeros(len(peaks), dtype=bool) if af_seconds is None else \
        np.asarray(af_seconds, dtype=bool)[np.minimum(
            np.asarray(peaks) // int(round(rate_hz)), len(af_seconds) - 1)] & (
            regular_share(peaks, rate_hz, block, rule.regular_within)
            < rule.max_af_regular_share)
    out[(out == normal) & early & ~in_af] = early_class
    return out


def rhythm_by_second(cleaned: np.ndarray, rate_hz: float, strip_s: float,
                     infer: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The rhythm model over overlapping windows of a cleaned lead at its rate (10 s every
    5 s on strips up to two minutes, `strip_s` every half of it on longer ones): each
    window's class probabilities, and each second's class index, the majority of the
    windows over it. `infer` maps a [B, 1, L] batch to [B, C] probabilities."""
    seconds = len(cleaned) / rate_hz
    window, step = (10.0, 5.0) if seconds <= 120 else (strip_s, strip_s / 2)
    length = int(strip_s * rate_hz)
    spans = strip_windows(cleaned, rate_hz, window, step)
    probs = np.concatenate([
        infer(np.concatenate([strip_input(cleaned[a:b], length) for a, b in spans[i:i + 32]]))
        for i in range(0, len(spans), 32)])
    votes = np.zeros((int(np.ceil(seconds)), probs.shape[1]))
    for (a, b), row in zip(spans, probs, strict=True):
        votes[int(a / rate_hz):int(np.ceil(b / rate_hz)), int(row.argmax())] += 1
    return probs, votes.argmax(axis=1)


def on_the_peak(cleaned: np.ndarray, peaks: np.ndarray, rate_hz: float,
                reach_s: float = 0.06) -> np.ndarray:
    """Each mark moved to the largest deflection (either sign) within `reach_s` of it: a
    detector's marks wander from beat to beat (Pan-Tompkins' by up to ~50 ms), a database's
    sit on the peak; a beat compared with its template must be aligned the same way."""
    peaks = np.asarray(peaks, dtype=np.int64)
    if len(peaks) == 0 or len(cleaned) == 0:
        return peaks
    reach = max(1, int(reach_s * rate_hz))
    offsets = np.arange(-reach, reach + 1)
    index = np.clip(peaks[:, None] + offsets[None, :], 0, len(cleaned) - 1)
    return index[np.arange(len(peaks)), np.argmax(np.abs(cleaned[index]), axis=1)]


def beat_inputs(cleaned: np.ndarray, peaks: np.ndarray, rate_hz: float, spec: SignalSpec,
                scale: float | None = None) -> dict[str, np.ndarray]:
    """The beat model's inputs for the beats at `peaks` of a cleaned lead (module
    docstring): training and the app both call this. With a template, the beats are
    aligned `on_the_peak` first (the template is only as sharp as the alignment)."""
    if spec.template_beats:
        peaks = on_the_peak(cleaned, peaks, rate_hz)
    windows = beat_windows(cleaned, peaks, spec.window, scale)
    if spec.template_beats:
        windows = with_template(windows, spec.template_beats)
    return {"beat": windows,
            "rr": rr_features(peaks, rate_hz, spec.rr, spec.template_beats)}


def strip_input(cleaned: np.ndarray, length: int) -> np.ndarray:
    """[1, 1, max(len, length)]: over its own standard deviation, zero padded at the end."""
    x = np.asarray(cleaned, dtype=np.float64)
    sd = float(np.std(x)) if len(x) else 1.0
    x = x / max(sd, 1e-3)
    out = np.zeros(max(len(x), length), dtype=np.float32)
    out[:len(x)] = x
    return out[None, None, :]


def strip_windows(cleaned: np.ndarray, rate_hz: float, window_s: float,
                  step_s: float) -> list[tuple[int, int]]:
    """Start and end samples of overlapping windows covering the strip (at least one)."""
    n, width, step = len(cleaned), int(window_s * rate_hz), int(step_s * rate_hz)
    if n <= width:
        return [(0, n)]
    starts = list(range(0, n - width + 1, step))
    if starts[-1] + width < n:
        starts.append(n - width)
    return [(s, s + width) for s in starts]


def graph_shapes(card: ModelCard) -> GraphShapes:
    """The ECG graphs' shapes (module docstring). Nothing in them may be padded: a longer
    beat window or strip would change what the network reads (the rhythm model's mean
    pools over the whole strip), so only the batch varies. A 30-min Holter record's
    ~2,200 beats run in batches of 1,024; a strip's windows (at most 24 in 2 min) in one."""
    from engines.inputs import GraphShapes, Tensor

    spec = SignalSpec.from_card(card.raw["signal"])
    output = Tensor(card.output, np.float32, (len(card.classes),))
    if card.kind == "ecg_beats":
        return GraphShapes((Tensor("beat", np.float32,
                                   (spec.beat_channels, spec.window[0] + spec.window[1])),
                            Tensor("rr", np.float32, (len(spec.rr),))),
                           output, max_batch=1024, typical_batch=64)
    return GraphShapes((Tensor("strip", np.float32, (1, int(spec.strip_s * spec.rate_hz))),),
                       output, max_batch=128, typical_batch=8)


def example_batches(card: ModelCard) -> list[dict[str, np.ndarray]]:
    """Batches of the shapes met in use: a beat, a 30-s strip's ~40 beats and a Holter
    hour's 4,096; one strip and a batch of 16 windows."""
    spec = SignalSpec.from_card(card.raw["signal"])
    rng = np.random.default_rng(0)
    if card.kind == "ecg_beats":
        width = spec.window[0] + spec.window[1]
        return [{"beat": rng.standard_normal((n, spec.beat_channels, width)).astype(np.float32),
                 "rr": np.ones((n, len(spec.rr)), dtype=np.float32)} for n in (1, 40, 4096)]
    length = int(spec.strip_s * spec.rate_hz)
    return [{"strip": rng.standard_normal((n, 1, length)).astype(np.float32)} for n in (1, 16)]
