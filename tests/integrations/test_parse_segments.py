"""Clarion's segment reader (integrations/hl7/parse.py: `Message`, `Segment`) against
python-hl7, the parser it replaced on the processing path: for every segment of every
shared sample, of the benchmark's messages and of generated ones full of separators and
escapes, the same field, repetition, component and subcomponent gives the same text.

MSH-1 and MSH-2, the separators themselves, are read whole (`field`), never split.
The one deliberate difference: python-hl7 answers a subcomponent past the first of a
component that has no subcomponents with the whole component; HL7 (and Clarion) says it
is empty. The reference below is python-hl7's containers read the HL7 way."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import hl7
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.hl7.header import read_header
from integrations.hl7.parse import Message, Segment

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import ingest as bench_messages  # noqa: E402


def reference(segment: Any, field: int, component: int, repetition: int, sub: int) -> str:
    """python-hl7's value at these indices, '' where absent."""
    try:
        value = segment[field]
    except IndexError:
        return ""
    indices = [repetition, component, sub]
    while indices:
        if isinstance(value, str):  # a leaf: only the first of each deeper level is it
            return value if all(i == 1 for i in indices) else ""
        index = indices.pop(0)
        if index > len(value):
            return ""
        value = value[index - 1]
    return value if isinstance(value, str) else str(value)


def reference_repetitions(segment: Any, field: int) -> list[str]:
    try:
        value = segment[field]
    except IndexError:
        return []
    return [str(rep) for rep in value if str(rep)]


def compare(text: str) -> int:
    """Asserts every index of every segment agrees; returns how many values it compared."""
    theirs = hl7.parse(text)
    ours = Message(text)
    assert len(ours.segments) == len(theirs)
    compared = 0
    for mine, their in zip(ours.segments, theirs, strict=True):
        assert mine.name == str(their[0]).strip().upper()
        for field in range(1, len(their) + 2):
            where = f"{mine.name}-{field} in {text[:40]!r}"
            if field < len(their):
                assert mine.field(field) == str(their[field]), where
            if mine.name == "MSH" and field <= 2:
                continue  # the separators themselves: read as sent, never split
            if field < len(their):
                assert mine.repetitions(field) == reference_repetitions(their, field), where
            read_once = mine.components(field)  # a coded element in one split
            assert read_once[:7] + [""] * (7 - len(read_once[:7])) == [
                reference(their, field, component, 1, 1) for component in range(1, 8)], where
            for repetition in (1, 2, 3):
                for component in range(1, 8):
                    for sub in (1, 2, 3):
                        assert mine.get(field, component, repetition, sub) == reference(
                            their, field, component, repetition, sub), \
                            (where, component, repetition, sub)
                        compared += 1
            if field < len(their):  # unescaped as python-hl7 does (unchanged without \\)
                assert ours.unescape(mine.field(field)) == theirs.unescape(str(their[field]))
    return compared


def test_every_shared_sample_reads_as_python_hl7_reads_it(samples: list[Path]) -> None:
    compared = sum(compare(read_header(path.read_bytes()).text) for path in samples)
    assert compared > 100_000


def test_the_benchmark_messages_read_the_same() -> None:
    rng = random.Random(7)
    for n in range(20):
        compare(read_header(bench_messages.adt_a08(n, rng)).text)
        compare(read_header(bench_messages.oru_r01(n, rng)).text)


def test_other_encoding_characters_are_honoured() -> None:
    text = "MSH|*#!$|LAB|HOSP|||20260101||ORU*R01|X1|P|2.5.1\rPID|1||A1*$*$*H$X#B2***Q||N!T!N"
    compare(text)
    assert Message(text).segments[1].get(3, 4, 1, 2) == "X"
    assert Message(text).segments[1].repetitions(3) == ["A1*$*$*H$X", "B2***Q"]


_CHARS = st.sampled_from(list("ab1 ^~&\\|.-EFSTR"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(_CHARS, max_size=24), min_size=1, max_size=8))
def test_any_field_content_reads_the_same(fields: list[str]) -> None:
    # No field may hold the segment separator or start a new segment; anything else goes.
    text = "MSH|^~\\&|A|B|||20260101||ADT^A01|1|P|2.5\rOBX|" + "|".join(fields)
    compare(text)


def test_msh_fields_are_numbered_as_in_hl7() -> None:
    msh: Segment = Message("MSH|^~\\&|SEND|FAC|||20260105080000||ADT^A08|C1|P|2.5.1"
                           ).segments[0]
    assert (msh.field(1), msh.field(2), msh.get(3), msh.get(7)) == (
        "|", "^~\\&", "SEND", "20260105080000")
    assert msh.get(9, 2) == "A08" and msh.get(40) == ""


def test_an_escape_python_hl7_cannot_read_logs_no_patient_data(caplog: Any) -> None:
    from integrations.hl7.parse import parse_message
    text = ("MSH|^~\\&|LAB|HOSP|||20260105||ORU^R01|C9|P|2.5.1\r"
            "PID|1||M77^^^HOSP^MR||Doe^Jane\r"
            "OBX|1|TX|1-8^Note^LN||Jane Doe's secret \\\\ \\Zxy\\ remark||||||F")
    with caplog.at_level("DEBUG"):
        [parsed] = parse_message(text, "ORU", "R01")
    assert parsed.observations[0].value_text.startswith("Jane Doe's secret")
    assert "secret" not in caplog.text and not caplog.records
