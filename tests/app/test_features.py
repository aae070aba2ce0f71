"""Store → model inputs: the HL7 round trip equals the generator's own encoding."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import Engine

from app.clinic.features import FeatureCache, dx_name, to_card_units
from app.config import Config
from app.ingest.processor import Processor
from app.store.db import open_store
from app.store.patients import find_by_identifier
from engines.card import load_card
from engines.inputs import encode, history_from_events
from engines.training.cohort import generate
from engines.training.feed import AUTHORITY, feed, mrn
from tests.app.helpers import hl7_message, store_raw

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    engine = open_store(config.database_url)
    yield engine
    engine.dispose()


def test_hl7_round_trip_gives_the_generators_inputs(engine: Engine) -> None:
    """Units in mmol/L and mmol/mol, corrections and missing results included."""
    from sqlalchemy.orm import Session

    card = load_card("t2d")
    patients = [p for p in generate(30, seed=21, index_date=NOW)]
    store_raw(engine, *feed(patients))
    Processor(engine).process_pending()
    cache = FeatureCache(engine)
    checked = 0
    for p in patients:
        expected = encode(card, history_from_events(
            card, [(e.name, e.time.timestamp(), e.value) for e in p.events],
            p.sex, p.birth_date.date(), p.ethnicity), NOW)
        with Session(engine) as session:
            [stored] = find_by_identifier(session, mrn(p), AUTHORITY)
        got = cache.get(stored.id).inputs(card, NOW)
        order_e = np.lexsort((expected.values, expected.codes, expected.ages))
        order_g = np.lexsort((got.values, got.codes, got.ages))
        assert np.array_equal(expected.codes[order_e], got.codes[order_g]), p.pid
        # Values went through unit conversions and rounding on the wire: HbA1c in whole
        # mmol/mol is 0.046 % (0.077 after normalization); everything else well under 0.05.
        tolerance = np.where(expected.codes[order_e] == card.code("hba1c"),
                             0.0462 / card.numeric["hba1c"].sd, 0.05)
        assert np.all(np.abs(expected.values[order_e] - got.values[order_g]) <= tolerance)
        np.testing.assert_allclose(expected.ages[order_e], got.ages[order_g], atol=1e-4)
        np.testing.assert_allclose(expected.static, got.static, atol=1e-3)
        checked += 1
    assert checked == 30


def test_incremental_update_and_correction(engine: Engine) -> None:
    def oru(cid: str, order: str, value: str, unit: str, status: str, when: str) -> str:
        return hl7_message(
            f"MSH|^~\\&|LAB|H|C|W|{when}||ORU^R01|{cid}|P|2.5",
            "PID|1||INC1^^^H^MR||Doe^Jo||19700101|F", f"OBR|1||{order}|X|||{when}",
            f"OBX|1|NM|4548-4^HbA1c^LN||{value}|{unit}|||||{status}|||{when}")

    store_raw(engine, oru("I1", "O1", "5.9", "%", "F", "20250601090000+0000"))
    Processor(engine).process_pending()
    cache = FeatureCache(engine)
    from sqlalchemy.orm import Session
    with Session(engine) as s:
        [patient] = find_by_identifier(s, "INC1", "H")
    first = cache.get(patient.id)
    assert [round(v, 2) for _, v in first.values_of("hba1c")] == [5.9]
    seen = first.last_obs_id
    # A new result in IFCC units, then a wrong value that is corrected.
    store_raw(engine, oru("I2", "O2", "45", "mmol/mol", "F", "20260501090000+0000"),
              oru("I3", "O3", "9.9", "%", "F", "20260520090000+0000"),
              oru("I4", "O3", "6.4", "%", "C", "20260520090000+0000"))
    Processor(engine).process_pending()
    again = cache.get(patient.id)
    assert again is first and again.last_obs_id > seen
    values = [round(v, 2) for _, v in again.values_of("hba1c")]
    assert values == [6.4, round(0.09148 * 45 + 2.152, 2), 5.9]


def test_units_and_codes() -> None:
    assert to_card_units("fpg", 7.0, "mmol/L") == pytest.approx(126.1, abs=0.1)
    assert to_card_units("hba1c", 48, "mmol/mol") == pytest.approx(6.54, abs=0.01)
    assert to_card_units("chol", 5.0, "mmol/l") == pytest.approx(193.4, abs=0.1)
    assert to_card_units("fpg", 7.0, "g/L") is None  # not understood: dropped, not guessed
    assert dx_name("R73.03") == "dx_prediabetes" and dx_name("I10") == "dx_htn"
    assert dx_name("O24.419") == "dx_gdm" and dx_name("J45") is None
