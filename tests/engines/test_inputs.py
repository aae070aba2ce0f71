"""The batch layout every engine reads (engines/inputs.collate): code-major, most recent
first within a code, `ends` where each code's events end, padding past the last end, and
only the events the model reads (a known code, inside the card's window)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest

from engines.card import ModelCard, load_card
from engines.inputs import (
    INPUT_NAMES,
    ModelInput,
    collate,
    encode,
    history_from_events,
    read_by_model,
)


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return load_card("t2d")


def _item(card: ModelCard, n: int, seed: int) -> ModelInput:
    rng = np.random.default_rng(seed)
    return ModelInput(rng.integers(0, len(card.vocabulary), n).astype(np.int64),
                      rng.normal(0, 1, n).astype(np.float32),
                      np.sort(rng.uniform(-1, 12, n)).astype(np.float32),
                      rng.normal(0, 1, len(card.static)).astype(np.float32))


def test_each_codes_events_lie_between_its_ends_in_their_own_order(card: ModelCard) -> None:
    items = [_item(card, n, seed) for seed, n in enumerate((1, 7, 300, 2048))]
    batch = collate(card, items, length=2100)
    assert list(batch) == list(INPUT_NAMES)
    vocab = len(card.vocabulary)
    assert batch["values"].shape == (4, 2100) and batch["ends"].shape == (4, vocab)
    assert batch["ends"].dtype == np.int64 and batch["values"].dtype == np.float32
    for row, item in enumerate(items):
        ends = batch["ends"][row]
        valid = (item.codes > 0) & (item.ages >= 0) & (item.ages <= card.window_years)
        np.testing.assert_array_equal(read_by_model(card, item), valid)
        start = 0
        for code in range(vocab):
            mine = valid & (item.codes == code)
            run = slice(start, ends[code])  # the run says the code: no `codes` input
            np.testing.assert_array_equal(batch["values"][row, run], item.values[mine])
            np.testing.assert_array_equal(batch["ages"][row, run], item.ages[mine])
            start = ends[code]
        assert ends[0] == 0 and ends[-1] == valid.sum()
        # padding: zeros, past every end
        assert not batch["values"][row, ends[-1]:].any() and not batch["ages"][row, ends[-1]:].any()
        np.testing.assert_array_equal(batch["static"][row], item.static)


def test_a_code_outside_the_vocabulary_is_an_error(card: ModelCard) -> None:
    item = _item(card, 5, 1)
    bad = ModelInput(np.array([1, 2, len(card.vocabulary), 3, 1]), item.values, item.ages,
                     item.static)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        collate(card, [bad])


def test_a_patient_with_no_events_is_one_padding_event(card: ModelCard) -> None:
    empty = ModelInput(np.zeros(0, np.int64), np.zeros(0, np.float32),
                       np.zeros(0, np.float32), np.zeros(len(card.static), np.float32))
    batch = collate(card, [empty])
    assert batch["values"].shape == (1, 1) and not batch["ends"].any()


def test_encode_gives_the_batch_order_so_collate_copies_it(card: ModelCard) -> None:
    rng = np.random.default_rng(3)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    names = ["hba1c", "bmi", "visit", "dx_htn", "fpg"]
    events = [(names[int(rng.integers(0, len(names)))], now.timestamp() - float(s),
               float(rng.uniform(5.0, 7.0)) if i % 2 else None)
              for i, s in enumerate(rng.uniform(-1e7, 4e8, 300))]
    events = [(n, t, v if n in ("hba1c", "fpg") else None) for n, t, v in events]
    item = encode(card, history_from_events(card, events, "F", date(1970, 1, 1), "black"),
                  now)
    assert item.code_major and len(item.codes) > 100
    assert np.all(np.diff(item.codes) >= 0)  # code-major
    for code in np.unique(item.codes):
        assert np.all(np.diff(item.ages[item.codes == code]) >= 0)  # most recent first
    # The same events most recent first (unflagged: sorted by collate) give the same batch.
    recent_first = np.argsort(item.ages, kind="stable")
    plain = ModelInput(item.codes[recent_first], item.values[recent_first],
                       item.ages[recent_first], item.static)
    copied, sorted_ = collate(card, [item]), collate(card, [plain])
    for name in INPUT_NAMES:
        np.testing.assert_array_equal(copied[name], sorted_[name])
