"""ACK building: original and enhanced mode, ERR segments, escaping."""

from __future__ import annotations

import hl7
import pytest

from integrations.hl7.acks import AckError, Outcome, build_ack, escape
from integrations.hl7.header import read_header

MSH = "MSH|^~\\&|LAB|HOSP|CLARION|WS1|20260101120000||ORU^R01^ORU_R01|C123|P|{v}{extra}"


def _header(version: str = "2.5.1", extra: str = ""):  # type: ignore[no-untyped-def]
    return read_header(MSH.format(v=version, extra=extra).encode())


@pytest.mark.parametrize("outcome,code", [(Outcome.ACCEPT, "AA"), (Outcome.ERROR, "AE"),
                                          (Outcome.REJECT, "AR")])
def test_original_mode_codes(outcome: Outcome, code: str) -> None:
    ack = hl7.parse(build_ack(_header(), outcome))
    assert str(ack.segment("MSA")[1]) == code
    assert str(ack.segment("MSA")[2]) == "C123"


@pytest.mark.parametrize("outcome,code", [(Outcome.ACCEPT, "CA"), (Outcome.ERROR, "CE"),
                                          (Outcome.REJECT, "CR")])
def test_enhanced_mode_commit_codes(outcome: Outcome, code: str) -> None:
    ack = hl7.parse(build_ack(_header(extra="|||AL|AL"), outcome))
    assert str(ack.segment("MSA")[1]) == code


def test_msh_swaps_sender_and_receiver_and_echoes_version_and_trigger() -> None:
    msh = hl7.parse(build_ack(_header(version="2.4"), Outcome.ACCEPT)).segment("MSH")
    assert [str(msh[i]) for i in (3, 4, 5, 6)] == ["CLARION", "WS1", "LAB", "HOSP"]
    assert str(msh[9]) == "ACK^R01^ACK"
    assert str(msh[12]) == "2.4"
    assert str(msh[10]) and str(msh[10]) != "C123"


def test_err_segment_v25_has_code_severity_location_and_text() -> None:
    err = AckError("101", "PID-3 is empty | no id", location="PID^1^3")
    ack = build_ack(_header(), Outcome.ERROR, (err,))
    segment = [s for s in ack.split("\r") if s.startswith("ERR")][0].split("|")
    assert segment[2] == "PID^1^3"
    assert segment[3] == "101^Required field missing^HL70357"
    assert segment[4] == "E"
    assert segment[8] == "PID-3 is empty \\F\\ no id"


def test_err_segment_before_v25_uses_eld_and_msa3() -> None:
    ack = build_ack(_header(version="2.3"), Outcome.REJECT, (AckError("200", "unsupported"),))
    segments = {s.split("|")[0]: s.split("|") for s in ack.split("\r") if s}
    assert segments["ERR"][1].endswith("200&Unsupported message type&HL70357")
    assert segments["MSA"][3] == "unsupported"


def test_unreadable_message_gets_ar_echoing_the_guess() -> None:
    ack = hl7.parse(build_ack(None, Outcome.REJECT, (AckError("100", "no MSH"),),
                              control_id="XYZ"))
    assert str(ack.segment("MSA")[1]) == "AR" and str(ack.segment("MSA")[2]) == "XYZ"
    ack = hl7.parse(build_ack(None, Outcome.REJECT, (AckError("100", "no MSH"),)))
    assert str(ack.segment("MSA")[2]) == ""


def test_escape_covers_every_delimiter() -> None:
    assert escape("a|b^c~d\\e&f\rg") == "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f g"
