"""Full parse of ADT and ORU into domain events."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from integrations.hl7.events import AdtAction, MessageContentError
from integrations.hl7.parse import parse_message, parse_timestamp

ORU = "\r".join([
    "MSH|^~\\&|LAB|HOSP|CLARION|WS1|20260101120000+0100||ORU^R01|C1|P|2.5.1",
    "PID|1||MRN1^^^HOSP^MR~999^^^SSA^SS||Doe^Jane||19700203|F|||||||||||||||H^Hispanic",
    "PV1|1|O|CLINIC^R1^B1^HOSP||||DR1^Who^Doc||||||||||DR2||V100",
    "OBR|1|PL1|FL1|4548-4^HbA1c^LN|||20260101100000+0100",
    "OBX|1|NM|4548-4^Hemoglobin A1c^LN||6.3|%|4.0-5.6|H|||F|||20260101103000+0100",
    "OBX|2|SN|2345-7^Glucose^LN||>^200|mg/dL||H|||C",
    "OBX|3|CWE|LOCAL9^Smoker^L^72166-2^Tobacco status^LN||LA18976-3^Never smoker^LN||||||F",
    "OBX|4|TX|NOTE^Comment^L||line one~line two \\T\\ more||||||F",
    "DG1|1||R73.03^Prediabetes^I10||20251201",
])


def test_oru_observations_value_types_and_codes() -> None:
    [msg] = parse_message(ORU, "ORU", "R01", UTC)
    a1c, glucose, smoker, note = msg.observations
    assert (a1c.loinc, a1c.value_num, a1c.units, a1c.abnormal_flag, a1c.status) == \
        ("4548-4", 6.3, "%", "H", "F")
    assert a1c.reference_range == "4.0-5.6"
    assert a1c.observed_at == datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    assert a1c.order_key == "F:FL1"
    assert (glucose.comparator, glucose.value_num, glucose.status) == (">", 200.0, "C")
    assert glucose.observed_at == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)  # from OBR-7
    assert (smoker.code, smoker.coding_system, smoker.loinc) == ("LOCAL9", "L", "72166-2")
    assert smoker.value_text == "Never smoker"
    assert note.value_text == "line one\nline two & more"
    [dx] = msg.diagnoses
    assert (dx.code, dx.coding_system) == ("R73.03", "ICD-10")


def test_patient_identifiers_keep_their_authority() -> None:
    [msg] = parse_message(ORU, "ORU", "R01", UTC)
    ids = [(i.value, i.authority, i.type_code) for i in msg.patient.identifiers]
    assert ids == [("MRN1", "HOSP", "MR"), ("999", "SSA", "SS")]
    assert (msg.patient.family_name, msg.patient.given_name) == ("Doe", "Jane")
    assert msg.patient.birth_date == date(1970, 2, 3)
    assert msg.visit is not None and msg.visit.visit_number == "V100"
    assert msg.visit.location == "CLINIC^R1^B1^HOSP"
    assert (msg.visit.attending, msg.visit.admitting) == ("DR1", "DR2")


def test_a40_with_two_pid_mrg_pairs() -> None:
    text = "\r".join([
        "MSH|^~\\&|ADT|H|C|W|20260101||ADT^A40^ADT_A40|M1|P|2.5",
        "EVN|A40|20260101",
        "PID|1||NEW1^^^H^MR", "MRG|OLD1^^^H^MR",
        "PID|1||NEW2^^^H^MR", "MRG|OLD2^^^H^MR"])
    first, second = parse_message(text, "ADT", "A40", UTC)
    assert first.adt_action is AdtAction.MERGE
    assert [i.value for i in first.merged_identifiers] == ["OLD1"]
    assert [i.value for i in second.merged_identifiers] == ["OLD2"]


@pytest.mark.parametrize("text,location", [
    ("MSH|^~\\&|L|H|C|W|2026||ORU^R01|C1|P|2.5\rOBX|1|NM|X||1", "PID"),
    ("MSH|^~\\&|L|H|C|W|2026||ORU^R01|C1|P|2.5\rPID|1||", "PID^1^3"),
    ("MSH|^~\\&|L|H|C|W|2026||ADT^A40|C1|P|2.5\rPID|1||A^^^H\rMRG|", "MRG^1^1"),
    ("MSH|^~\\&|L|H|C|W|2026||ADT^A02|C1|P|2.5\rPID|1||A^^^H", "PV1"),
])
def test_unusable_content_is_a_content_error(text: str, location: str) -> None:
    message_type, trigger = text.split("|")[8].split("^")[:2]
    with pytest.raises(MessageContentError) as info:
        parse_message(text, message_type, trigger, UTC)
    assert info.value.location == location


@pytest.mark.parametrize("text,expected", [
    ("2026", datetime(2026, 1, 1, tzinfo=UTC)),
    ("202603151230", datetime(2026, 3, 15, 12, 30, tzinfo=UTC)),
    ("20260315123045.25-0500", datetime(2026, 3, 15, 17, 30, 45, 250000, tzinfo=UTC)),
    ("20260315+0200", datetime(2026, 3, 14, 22, 0, tzinfo=UTC)),
    ("", None), ("junk", None), ("20261399", None),
])
def test_timestamps(text: str, expected: datetime | None) -> None:
    assert parse_timestamp(text, UTC) == expected


def test_problem_list_entries_are_diagnoses() -> None:
    """PPR^PC1 (a problem added): each PRB is a diagnosis with its coding system and
    onset; a deletion (PRB-1 DE) adds nothing."""
    text = "\r".join([
        "MSH|^~\\&|EHR|H|C|W|20260105080000||PPR^PC1^PPR_PC1|P1|P|2.5.1",
        "PID|1||M1^^^H^MR||Doe^Jo",
        "PRB|AD|20260105080000|44054006^Diabetes mellitus type 2^SCT|I-1|||20250101|||||||||20240315",
        "PRB|AD|20260105080000|I10^Essential hypertension^I10|I-2|||20230101",
        "PRB|DE|20260105080000|38341003^Hypertensive disorder^SCT|I-3"])
    [parsed] = parse_message(text, "PPR", "PC1")
    first, second = parsed.diagnoses
    assert (first.code, first.coding_system, first.diagnosis_type) == (
        "44054006", "SNOMED-CT", "P")
    assert first.diagnosed_at == datetime(2024, 3, 15, tzinfo=UTC)  # PRB-16, the onset
    assert (second.code, second.coding_system) == ("I10", "ICD-10")
    assert second.diagnosed_at == datetime(2023, 1, 1, tzinfo=UTC)  # PRB-7 without PRB-16
