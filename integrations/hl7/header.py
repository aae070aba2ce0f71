"""The receipt fast path: decode a frame and read its MSH, nothing more.

At receipt Clarion only needs the header: to answer with the right ACK, to recognise a
resend, and to know whether it uses the message type at all. The full parse happens
later, off the ACK path (see `integrations.hl7.parse`).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

BOM = b"\xef\xbb\xbf"

# HL7 table 0211 (alternate character sets) → Python codecs. The first repetition of
# MSH-18 is the message's default character set.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE": "utf-8",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "ISO IR192": "utf-8",
    "BIG-5": "big5",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc-kr",
    "ISO IR87": "iso2022_jp",
    "ISO IR159": "iso2022_jp_2",
}
# Tried in order when MSH-18 is empty, unknown, or wrong about the bytes; latin-1 never fails.
FALLBACK_CODECS = ("utf-8", "cp1252", "latin-1")

_CONTROL_ID_GUESS = re.compile(rb"MSH(.)(?:[^\r\n]*?\1){8}([^\r\n]*?)(?:\1|[\r\n]|$)")


class HeaderError(ValueError):
    """No usable MSH: the message cannot be read at all.

    `control_id` is whatever MSH-10 could be read (empty if none), for the AR's MSA-2.
    """

    def __init__(self, text: str, *, control_id: str = "", hl7_code: str = "100") -> None:
        super().__init__(text)
        self.control_id = control_id
        self.hl7_code = hl7_code


@dataclass(frozen=True, slots=True)
class Header:
    """The fields of MSH that receipt and ACK building need, plus the decoded text."""

    text: str  # whole message, segments separated by CR, BOM removed
    charset: str  # the Python codec used
    charset_fallback: bool  # MSH-18 was missing, unknown or wrong about the bytes
    field_sep: str
    encoding_chars: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str
    trigger: str
    control_id: str
    processing_id: str
    version: str
    accept_ack_type: str  # MSH-15
    application_ack_type: str  # MSH-16
    charset_field: str  # MSH-18 as sent

    @property
    def component_sep(self) -> str:
        return self.encoding_chars[0] if self.encoding_chars else "^"

    @property
    def enhanced_mode(self) -> bool:
        """Enhanced acknowledgment mode: MSH-15 or MSH-16 is valued."""
        return bool(self.accept_ack_type or self.application_ack_type)


def normalize_segments(text: str) -> str:
    """Segments may end in CR, LF or CRLF on the wire; HL7 wants CR. Drop empty segments."""
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    return "\r".join(seg for seg in text.split("\r") if seg.strip())


def guess_control_id(raw: bytes) -> str:
    """Best-effort MSH-10 from bytes that failed to parse, for the MSA-2 of an AR."""
    match = _CONTROL_ID_GUESS.search(raw)
    if not match:
        return ""
    return match.group(2).decode("latin-1").strip()[:199]


def _declared_codec(raw: bytes) -> tuple[str, str]:
    """MSH-18 read from the ASCII-compatible header bytes: (field text, codec or '')."""
    end = min((i for i in (raw.find(b"\r"), raw.find(b"\n")) if i >= 0), default=len(raw))
    msh = raw[:end]
    if len(msh) < 4:
        return "", ""
    sep = msh[3:4]
    fields = msh.split(sep)
    # fields[0] is "MSH" and fields[1] is MSH-2, so MSH-n is fields[n - 1].
    if len(fields) < 18:
        return "", ""
    charset_field = fields[17].decode("latin-1").strip()
    repetition = fields[1][1:2].decode("latin-1") or "~"
    first = charset_field.split(repetition)[0].strip().upper()
    return charset_field, CHARSETS.get(first, "")


def decode(raw: bytes) -> tuple[str, str, bool]:
    """Bytes → (text, codec, fell_back). Honours MSH-18; never raises."""
    if raw.startswith(BOM):
        raw = raw[len(BOM):]
    _, declared = _declared_codec(raw.lstrip())
    candidates = ((declared,) if declared else ()) + FALLBACK_CODECS
    for name in candidates:
        try:
            return codecs.decode(raw, name), name, name != declared
        except (UnicodeDecodeError, LookupError):
            continue
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


def read_header(raw: bytes) -> Header:
    """Decode a frame's payload and read its MSH. Raises `HeaderError` if there is none."""
    text, codec, fell_back = decode(raw)
    text = normalize_segments(text.lstrip("\ufeff \t\r\n"))
    if not text.startswith("MSH") or len(text) < 8:
        raise HeaderError("message does not start with an MSH segment",
                          control_id=guess_control_id(raw))
    sep = text[3]
    if sep.isalnum() or sep in "\r ":
        raise HeaderError(f"MSH-1 field separator {sep!r} is not usable",
                          control_id=guess_control_id(raw))
    msh = text.split("\r", 1)[0]
    fields = msh.split(sep)
    encoding_chars = fields[1] if len(fields) > 1 else ""
    if len(encoding_chars) < 4 or sep in encoding_chars:
        raise HeaderError("MSH-2 encoding characters are missing or invalid",
                          control_id=guess_control_id(raw))

    def field(n: int) -> str:
        return fields[n - 1].strip() if len(fields) >= n else ""

    component = encoding_chars[0]
    msg_type = field(9).split(component)
    return Header(
        text=text,
        charset=codec,
        charset_fallback=fell_back,
        field_sep=sep,
        encoding_chars=encoding_chars,
        sending_application=field(3),
        sending_facility=field(4),
        receiving_application=field(5),
        receiving_facility=field(6),
        message_type=msg_type[0].strip().upper(),
        trigger=msg_type[1].strip().upper() if len(msg_type) > 1 else "",
        control_id=field(10),
        processing_id=field(11).split(component)[0],
        version=field(12).split(component)[0],
        accept_ack_type=field(15).upper(),
        application_ack_type=field(16).upper(),
        charset_field=field(18),
    )
