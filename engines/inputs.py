"""From a canonical event history to the arrays a sequence model reads.

Canonical means already mapped to the card's vocabulary and converted to its units (the
app does that from the store; the training code from the synthetic cohort), so training
and serving share this one encoding.

Model inputs, per patient (batched with padding, code 0):
  codes   int64   [N]  vocabulary index, most recent first
  values  float32 [N]  (value - mean) / sd for numeric inputs, clipped to ±5; 0 otherwise
  ages    float32 [N]  years before "now" (timeline aligned to the scoring time)
  static  float32 [S]  age, sex, ethnicity group, and missingness flags (see STATIC)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from engines.card import ModelCard

YEAR_S = 365.25 * 86400
STATIC = ("age", "female", "eth_south_asian", "eth_black", "eth_east_asian", "eth_other",
          "no_hba1c", "no_glucose", "no_bmi")


@dataclass(frozen=True, slots=True)
class History:
    """A patient's canonical history as arrays (times in epoch seconds, values in card units).

    `values` holds NaN for events without a value (diagnoses, visits).
    """

    names: np.ndarray  # int64 vocabulary indices
    times: np.ndarray  # float64 epoch seconds
    values: np.ndarray  # float32 normalized values (0 where none)
    sex: str
    birth_date: date | None
    ethnicity: str  # white, south_asian, black, east_asian, other, or "" if unknown


@dataclass(frozen=True, slots=True)
class ModelInput:
    """One patient's model input (unpadded)."""

    codes: np.ndarray
    values: np.ndarray
    ages: np.ndarray
    static: np.ndarray


def normalize(card: ModelCard, name: str, value: float | None) -> float | None:
    """A canonical value → the model's scale; None if implausible (a unit or entry error)."""
    spec = card.numeric.get(name)
    if spec is None:
        return 0.0
    if value is None or not (spec.low <= value <= spec.high):
        return None
    return min(5.0, max(-5.0, (value - spec.mean) / spec.sd))  # per value: no NumPy call


def history_from_events(card: ModelCard, events: list[tuple[str, float, float | None]],
                        sex: str, birth_date: date | None, ethnicity: str) -> History:
    """(name, epoch seconds, canonical value) triples → a `History` (unknown names dropped)."""
    index = {name: i for i, name in enumerate(card.vocabulary)}
    names, times, values = [], [], []
    for name, when, value in events:
        code = index.get(name)
        if code is None:
            continue
        scaled = normalize(card, name, value)
        if scaled is None:
            continue
        names.append(code)
        times.append(when)
        values.append(scaled)
    order = np.argsort(np.asarray(times, dtype=np.float64), kind="stable")
    return History(np.asarray(names, dtype=np.int64)[order],
                   np.asarray(times, dtype=np.float64)[order],
                   np.asarray(values, dtype=np.float32)[order], sex, birth_date, ethnicity)


def encode(card: ModelCard, history: History, now: datetime) -> ModelInput:
    """Align to `now`, keep the window, most recent first, truncate to the card's maximum."""
    now_s = now.timestamp()
    ages = (now_s - history.times) / YEAR_S
    keep = (ages >= 0) & (ages <= card.window_years)
    codes, values, ages = history.names[keep], history.values[keep], ages[keep]
    # Arrays are time-ascending: reverse for recent-first, then truncate the oldest.
    codes, values, ages = codes[::-1][:card.max_events], values[::-1][:card.max_events], \
        ages[::-1][:card.max_events]
    present = set(codes.tolist())  # not np.unique: its first call imports numpy.ma (~25 ms)
    age = ((now.date() - history.birth_date).days / 365.25) if history.birth_date else 50.0
    eth = history.ethnicity
    static = np.array([
        (age - 50.0) / 15.0, 1.0 if history.sex == "F" else 0.0,
        eth == "south_asian", eth == "black", eth == "east_asian", eth == "other",
        card.code("hba1c") not in present,
        card.code("fpg") not in present and card.code("glucose") not in present,
        card.code("bmi") not in present], dtype=np.float32)
    return ModelInput(codes.astype(np.int64), values.astype(np.float32),
                      ages.astype(np.float32), static)


def collate(inputs: list[ModelInput], length: int | None = None) -> dict[str, np.ndarray]:
    """Pad a batch to its longest history, or to `length` (at least 1; code 0 = padding)."""
    longest = max(1, max(len(i.codes) for i in inputs))
    length = max(longest, length or 0)
    batch = len(inputs)
    codes = np.zeros((batch, length), dtype=np.int64)
    values = np.zeros((batch, length), dtype=np.float32)
    ages = np.zeros((batch, length), dtype=np.float32)
    for row, item in enumerate(inputs):
        n = len(item.codes)
        codes[row, :n], values[row, :n], ages[row, :n] = item.codes, item.values, item.ages
    static = np.stack([i.static for i in inputs]).astype(np.float32)
    return {"codes": codes, "values": values, "ages": ages, "static": static}
