"""From a canonical event history to the arrays a sequence model reads.

Canonical means already mapped to the card's vocabulary and converted to its units (the
app does that from the store; the training code from the synthetic cohort), so training
and serving share this one encoding.

One patient (`ModelInput`, what `encode` returns and the occlusion rows are cut from):
  codes   int64   [N]  vocabulary index; `encode` orders the events code-major, as below
  values  float32 [N]  (value - mean) / sd for numeric inputs, clipped to ±5; 0 otherwise
  ages    float32 [N]  years before "now" (timeline aligned to the scoring time)
  static  float32 [S]  age, sex, ethnicity group, and missingness flags (see STATIC)

A batch (`collate`, what every engine reads; it takes a patient's events in any order, but
most recent first within each code): the same events, code-major (each code's events
together, in vocabulary order, most recent first within a code), the way a compressed
sparse row matrix stores ragged rows, and padded at the end:
  values, ages  [B, N]
  ends    int64   [B, V]  where each code's events end; code c's are ends[c-1]..ends[c]
  static  float32 [B, S]
The codes themselves are not an input: in code-major order `ends` says which code each
event has (the graph once took them and read only their shape; TensorRT warned "Unused
Input: codes").
The model reads a code's sums as differences of one running sum at its two ends, and its
latest event as the first of its run: no scatter over the events (engines/training/model.py).
Only events the model reads are kept: a known code, 0 <= years before now <= the card's
window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from engines.card import ModelCard

YEAR_S = 365.25 * 86400
INPUT_NAMES = ("values", "ages", "ends", "static")  # the graph's inputs, in order
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
    # Already in collate's order, every event one the model reads: `encode` sets it, and
    # leaving events out (the occlusion rows) keeps it true.
    code_major: bool = False


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


def _by_code(card: ModelCard, codes: np.ndarray) -> np.ndarray:
    """The stable order that groups events by code (int16 keys: NumPy sorts them by radix,
    in linear time; int64 keys took 6x as long for 2,048 events)."""
    return np.argsort(codes.astype(np.int16 if len(card.vocabulary) < 2**15 else np.int64),
                      kind="stable")


def encode(card: ModelCard, history: History, now: datetime) -> ModelInput:
    """Align to `now`, keep the window, most recent first, truncate to the card's maximum;
    then code-major (the events of each code together, most recent first), so that a
    batch of this patient and its occlusion rows needs no sorting in `collate`."""
    now_s = now.timestamp()
    ages = (now_s - history.times) / YEAR_S
    keep = (ages >= 0) & (ages <= card.window_years)
    codes, values, ages = history.names[keep], history.values[keep], ages[keep]
    # Arrays are time-ascending: reverse for recent-first, then truncate the oldest.
    codes, values, ages = codes[::-1][:card.max_events], values[::-1][:card.max_events], \
        ages[::-1][:card.max_events]
    order = _by_code(card, codes)  # code-major: the window's events, so all are read
    codes, values, ages = codes[order], values[order], ages[order]
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
                      ages.astype(np.float32), static, code_major=True)


def read_by_model(card: ModelCard, item: ModelInput) -> np.ndarray:
    """Which events of `item` the model reads: a code (not the padding 0), 0..window years."""
    return (item.codes > 0) & (item.ages >= 0.0) & (item.ages <= card.window_years)


def by_code(card: ModelCard, item: ModelInput) -> ModelInput:
    """`item` in collate's order: the events the model reads, code-major, flagged. Done once
    for inputs scored many times (the validation patients), `collate` then copies them."""
    if item.code_major:
        return item
    vocab = len(card.vocabulary)
    if len(item.codes) and not 0 <= item.codes.min() <= item.codes.max() < vocab:
        raise ValueError(f"codes outside the vocabulary of {card.id} (0..{vocab - 1})")
    read = read_by_model(card, item)
    codes = item.codes[read]
    order = _by_code(card, codes)
    return ModelInput(codes[order], item.values[read][order], item.ages[read][order],
                      item.static, code_major=True)


def collate(card: ModelCard, inputs: list[ModelInput],
            length: int | None = None) -> dict[str, np.ndarray]:
    """A batch in the layout above, padded to its longest history or to `length` (at least 1).

    Rows from `encode` (and the occlusion rows cut from them) are in order already; others
    lose the events the model does not read and are sorted by code, stably, so each code's
    events stay most recent first."""
    vocab = len(card.vocabulary)
    batch = len(inputs)
    rows = [by_code(card, i) for i in inputs]
    length = max(1, length or 0, max(len(r.codes) for r in rows))
    values = np.zeros((batch, length), dtype=np.float32)
    ages = np.zeros((batch, length), dtype=np.float32)
    ends = np.zeros((batch, vocab), dtype=np.int64)
    static = np.empty((batch, len(inputs[0].static)), dtype=np.float32)
    for row, item in enumerate(rows):
        n = len(item.codes)
        values[row, :n], ages[row, :n] = item.values, item.ages
        np.cumsum(np.bincount(item.codes, minlength=vocab), out=ends[row])
        static[row] = item.static
    return {"values": values, "ages": ages, "ends": ends, "static": static}


@dataclass(frozen=True, slots=True)
class Tensor:
    """One graph input or output as an engine with fixed buffers (TensorRT) must size it:
    its dtype and its largest dimensions after the batch. `varies` is the index (into
    `dims`) of the length a call may fall short of, padded with zeros up to a bucket; it is
    set only where that padding leaves the output unchanged (a timeline's events, which lie
    past every code's end). `typical` is that length in everyday use."""

    name: str
    dtype: type
    dims: tuple[int, ...]
    varies: int | None = None
    typical: int = 0


@dataclass(frozen=True, slots=True)
class GraphShapes:
    """What a card's graph reads and returns, and the batches it is run with: `max_batch`
    rows at most per run (larger batches are split), `typical_batch` in everyday use."""

    inputs: tuple[Tensor, ...]
    output: Tensor
    max_batch: int
    typical_batch: int


TYPICAL_EVENTS = 256


def graph_shapes(card: ModelCard) -> GraphShapes:
    """The shapes of the card's graph: the layout above for a timeline model (one patient,
    or one patient's occlusion rows, fewer than 32 feature groups); an ECG model's from
    `engines.signals.graph_shapes`."""
    if card.kind != "timeline":
        from engines.signals import graph_shapes as signal_shapes

        return signal_shapes(card)
    events = card.max_events
    return GraphShapes(
        inputs=(Tensor("values", np.float32, (events,), 0, TYPICAL_EVENTS),
                Tensor("ages", np.float32, (events,), 0, TYPICAL_EVENTS),
                Tensor("ends", np.int64, (len(card.vocabulary),)),
                Tensor("static", np.float32, (len(card.static),))),
        output=Tensor(card.output, np.float32, (1,)), max_batch=32, typical_batch=1)


def example_batches(card: ModelCard) -> list[dict[str, np.ndarray]]:
    """A few batches of the shapes the card's model reads in use (warm-up, timing): for a
    timeline model one patient of 1, 64 and 512 events; for an ECG model those of
    `engines.signals.example_batches`."""
    if card.kind != "timeline":
        from engines.signals import example_batches as signal_batches

        return signal_batches(card)
    return [collate(card, [ModelInput(
        np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.float32),
        np.linspace(0, 5, n, dtype=np.float32), np.zeros(len(card.static), dtype=np.float32))])
        for n in (1, 64, 512)]
