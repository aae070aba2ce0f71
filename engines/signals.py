"""From an ECG lead to the arrays the ECG models read: the encoding shared by training and
serving, as `engines/inputs.py` is for the timeline models.

The card says how its model was trained (`card.signal`): the sample rate, the filter, the
beat window and the strip length. The app (`app/ecg/`) picks the lead, resamples to that
rate, detects the QRS complexes and judges the signal's quality; what the network reads
is made here, so the training code and the app cannot drift apart.

Beat model (`ecg_beats`), one row per beat:
  beat      float32 [B, 1, W]  the filtered lead from `before` samples ahead of the R peak
                               to `after` samples past it, over the strip's R amplitude
  rr        float32 [B, F]     RR-interval features (`RR_FEATURES`), the inter-patient
                               standard (de Chazal 2004): the beat's own intervals against
                               the local and the strip's average rhythm
Rhythm model (`ecg_rhythm`), one row per strip:
  strip     float32 [B, 1, L]  the filtered lead over its own standard deviation, zero
                               padded at the end to the card's length (at least)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from engines.card import ModelCard
    from engines.inputs import GraphShapes

RR_FEATURES = ("pre_rr", "post_rr", "local_rr", "pre_over_local", "post_over_local",
               "local_over_mean")


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """How a card's model reads the ECG (the "signal" block of its card.json)."""

    rate_hz: float
    band_hz: tuple[float, float]
    window: tuple[int, int] = (0, 0)  # beats: samples before and after the R peak
    strip_s: float = 0.0  # rhythm: the strip length the model was trained on
    lead: str = "II"

    @classmethod
    def from_card(cls, block: dict) -> SignalSpec:
        return cls(float(block["rate_hz"]), (float(block["band_hz"][0]),
                                             float(block["band_hz"][1])),
                   tuple(block.get("window", (0, 0))),  # type: ignore[arg-type]
                   float(block.get("strip_s", 0.0)), str(block.get("lead", "II")))

    def to_card(self) -> dict:
        return {"rate_hz": self.rate_hz, "band_hz": list(self.band_hz),
                "window": list(self.window), "strip_s": self.strip_s, "lead": self.lead}


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


def rr_features(peaks: np.ndarray, rate_hz: float, local_beats: int = 10) -> np.ndarray:
    """[B, len(RR_FEATURES)]: seconds before and after each beat, the mean of the
    `local_beats` intervals around it, their ratios, and the local against the strip's mean.

    The first and last beats borrow their missing interval from their neighbour's."""
    n = len(peaks)
    if n == 0:
        return np.zeros((0, len(RR_FEATURES)), dtype=np.float32)
    if n == 1:
        return np.tile(np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], dtype=np.float32), (1, 1))
    rr = np.diff(np.asarray(peaks, dtype=np.float64)) / rate_hz
    pre = np.concatenate([[rr[0]], rr])
    post = np.concatenate([rr, [rr[-1]]])
    kernel = np.ones(local_beats) / local_beats
    padded = np.pad(pre, (local_beats // 2, local_beats - local_beats // 2 - 1), mode="edge")
    local = np.convolve(padded, kernel, mode="valid")
    mean = float(np.mean(rr))
    features = np.stack([pre, post, local, pre / local, post / local,
                         local / mean], axis=1)
    return np.clip(features, 0.0, 5.0).astype(np.float32)


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
        return GraphShapes((Tensor("beat", np.float32, (1, spec.window[0] + spec.window[1])),
                            Tensor("rr", np.float32, (len(RR_FEATURES),))),
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
        return [{"beat": rng.standard_normal((n, 1, width)).astype(np.float32),
                 "rr": np.ones((n, len(RR_FEATURES)), dtype=np.float32)} for n in (1, 40, 4096)]
    length = int(spec.strip_s * spec.rate_hz)
    return [{"strip": rng.standard_normal((n, 1, length)).astype(np.float32)} for n in (1, 16)]
