"""Store → model inputs: the HL7 round trip equals the generator's own encoding."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import Engine

from app.clinic.features import FeatureCache, body_value, dx_name, is_diabetes, to_card_units
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
    # SNOMED CT by concept; ICD-10 prefixes do not apply to it.
    assert dx_name("38341003", "SNOMED-CT") == "dx_htn"
    assert dx_name("160303001", "SNOMED-CT") == "dx_famhx"
    assert dx_name("I10", "SNOMED-CT") is None and dx_name("22298006", "SNOMED-CT") is None
    assert is_diabetes("44054006", "SNOMED-CT") and is_diabetes("E11.9", "ICD-10")
    assert not is_diabetes("38341003", "SNOMED-CT")
    # Body weight and height, in whatever unit they came; implausible ones dropped.
    assert body_value("weight", 176.4, "[lb_av]") == pytest.approx(80.0, abs=0.05)
    assert body_value("height", 70.0, "[in_i]") == pytest.approx(177.8)
    assert body_value("height", 1.75, "m") == pytest.approx(175.0)
    assert body_value("weight", 80, "stone") is None and body_value("height", 17.5, "cm") is None


def test_bmi_from_weight_and_height_where_none_is_sent(engine: Engine) -> None:
    from sqlalchemy.orm import Session

    def oru(cid: str, when: str, *obx: str) -> str:
        return hl7_message(f"MSH|^~\\&|LAB|H|C|W|{when}||ORU^R01|{cid}|P|2.5",
                           "PID|1||BMI1^^^H^MR||Doe^Jo||19700101|F", f"OBR|1||O{cid}|X|||{when}",
                           *obx)

    store_raw(engine,
              oru("B1", "20250601090000", "OBX|1|NM|8302-2^Body height^LN||170|cm|||||F|||20250601090000",
                  "OBX|2|NM|29463-7^Body weight^LN||80|kg|||||F|||20250601090000"),
              oru("B2", "20251201090000", "OBX|1|NM|29463-7^Body weight^LN||187.4|[lb_av]|||||F|||20251201090000"),
              oru("B3", "20260101090000", "OBX|1|NM|29463-7^Body weight^LN||90|kg|||||F|||20260101090000",
                  "OBX|2|NM|39156-5^BMI^LN||31.2|kg/m2|||||F|||20260101090000"))
    Processor(engine).process_pending()
    with Session(engine) as session:
        [patient] = find_by_identifier(session, "BMI1", "H")
    features = FeatureCache(engine).get(patient.id)
    # Newest first: the BMI sent (not one derived beside it), then 85 kg and 80 kg at 1.70 m.
    assert [v for _, v in features.values_of("bmi")] == [31.2, 29.4, 27.7]
