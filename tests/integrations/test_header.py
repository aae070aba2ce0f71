"""Decoding and MSH reading at receipt."""

from __future__ import annotations

import pytest

from integrations.hl7.header import HeaderError, guess_control_id, read_header

MSH = "MSH|^~\\&|LAB|HOSP|CLARION|WS1|20260101120000||ORU^R01^ORU_R01|C123|P|2.5.1"


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segment_separators_cr_lf_crlf_are_all_read(sep: str) -> None:
    raw = sep.join([MSH, "PID|1||42^^^H^MR", "OBX|1|NM|4548-4^HbA1c^LN||6.1|%"]).encode()
    header = read_header(raw)
    assert header.text.split("\r")[1].startswith("PID")
    assert header.text.count("\r") == 2
    assert (header.message_type, header.trigger, header.control_id) == ("ORU", "R01", "C123")


def test_byte_order_mark_is_dropped() -> None:
    header = read_header(b"\xef\xbb\xbf" + MSH.encode())
    assert header.text.startswith("MSH|") and header.sending_application == "LAB"


def test_msh18_latin1_is_honoured() -> None:
    msh = MSH + "||||||8859/1"
    raw = (msh + "\rPID|1||42^^^H^MR||Müller^Jürgen").encode("latin-1")
    header = read_header(raw)
    assert header.charset == "latin-1" and not header.charset_fallback
    assert "Müller^Jürgen" in header.text


def test_msh18_utf8_is_honoured() -> None:
    raw = (MSH + "||||||UNICODE UTF-8\rPID|1||42^^^H^MR||Øster^Åse").encode("utf-8")
    header = read_header(raw)
    assert header.charset == "utf-8" and "Øster^Åse" in header.text


def test_wrong_or_missing_charset_falls_back_without_losing_the_message() -> None:
    raw = (MSH + "||||||ASCII\rPID|1||42^^^H^MR||Müller").encode("utf-8")
    header = read_header(raw)
    assert header.charset_fallback and header.charset == "utf-8"
    assert "Müller" in header.text
    latin = (MSH + "\rPID|1||42^^^H^MR||Müller").encode("latin-1")  # not UTF-8, no MSH-18
    header = read_header(latin)
    assert header.charset_fallback and "M" in header.text and header.control_id == "C123"


def test_enhanced_mode_is_read_from_msh15_and_16() -> None:
    assert not read_header(MSH.encode()).enhanced_mode
    header = read_header((MSH + "|||AL|NE").encode())
    assert header.enhanced_mode and header.accept_ack_type == "AL"


@pytest.mark.parametrize("raw", [b"", b"PID|1||42", b"MSH", b"MSHa^~\\&|x", b"MSH|^|x"])
def test_no_usable_msh_raises(raw: bytes) -> None:
    with pytest.raises(HeaderError):
        read_header(raw)


def test_control_id_is_guessed_from_a_broken_message() -> None:
    raw = b"garbage\rMSH|^~\\&|A|B|C|D|2026||ORU^R01|XYZ-9|P|2.5"
    assert guess_control_id(raw) == "XYZ-9"
    assert guess_control_id(b"nothing here") == ""
