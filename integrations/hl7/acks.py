"""Building HL7 v2 acknowledgments.

Original mode (MSH-15 and MSH-16 empty) answers AA/AE/AR; enhanced mode answers with a
commit ACK, CA/CE/CR. Every error carries an ERR segment with an HL7 table 0357 code,
a severity and a text the sender's interface team can act on.

Clarion answers every frame, even when MSH-15 says NE: over MLLP the sender waits for an
answer on the connection, and silence would stall its queue until it times out.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from integrations.hl7.header import Header


class Outcome(StrEnum):
    """What the receiver decided about a message, independent of the ACK mode."""

    ACCEPT = "accept"
    ERROR = "error"
    REJECT = "reject"


_ORIGINAL = {Outcome.ACCEPT: "AA", Outcome.ERROR: "AE", Outcome.REJECT: "AR"}
_ENHANCED = {Outcome.ACCEPT: "CA", Outcome.ERROR: "CE", Outcome.REJECT: "CR"}

# HL7 table 0357, message error condition codes.
ERROR_CODES: dict[str, str] = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}


@dataclass(frozen=True, slots=True)
class AckError:
    """One ERR segment: HL7 0357 code, severity (E error, W warning, I info), text, location."""

    code: str
    text: str
    severity: str = "E"
    location: str = ""  # e.g. "MSH^1^10" (segment^sequence^field)


_counter = itertools.count(1)
_prefix = f"CLR{os.getpid() % 100000:05d}"


def new_control_id() -> str:
    """A control ID for an ACK, unique within this process and across restarts."""
    return f"{_prefix}{int(time.time() * 1000)}{next(_counter):06d}"[:199]


def ack_code(outcome: Outcome, enhanced: bool) -> str:
    return (_ENHANCED if enhanced else _ORIGINAL)[outcome]


def escape(text: str, field_sep: str = "|", encoding_chars: str = "^~\\&") -> str:
    """Escape text for an HL7 field (\\F\\ \\S\\ \\R\\ \\E\\ \\T\\), and flatten line breaks."""
    component, repetition, esc, sub = tuple((encoding_chars + "^~\\&")[:4])
    out = text.replace(esc, f"{esc}E{esc}")
    for char, code in ((field_sep, "F"), (component, "S"), (repetition, "R"), (sub, "T")):
        out = out.replace(char, f"{esc}{code}{esc}")
    return out.replace("\r", " ").replace("\n", " ")


def _version_at_least(version: str, major: int, minor: int) -> bool:
    parts = version.split(".")
    try:
        return (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0) >= (major, minor)
    except ValueError:
        return True


def _err_segment(err: AckError, version: str, sep: str, enc: str) -> str:
    comp, _, _, sub = tuple((enc + "^~\\&")[:4])
    name = ERROR_CODES.get(err.code, "Application internal error")
    text = escape(err.text, sep, enc)
    if not _version_at_least(version, 2, 5):
        # Before v2.5, ERR-1 is an ELD: segment^sequence^field^code&text&HL70357.
        loc = (err.location.split("^") + ["", "", ""])[:3]
        eld = comp.join([*loc, sub.join([err.code, escape(name, sep, enc), "HL70357"])])
        return sep.join(["ERR", eld])
    location = comp.join(err.location.split("^")) if err.location else ""
    code = comp.join([err.code, escape(name, sep, enc), "HL70357"])
    # ERR-2 location, ERR-3 code, ERR-4 severity, ERR-8 user message.
    return sep.join(["ERR", "", location, code, err.severity, "", "", "", text])


def build_ack(
    header: Header | None,
    outcome: Outcome,
    errors: tuple[AckError, ...] = (),
    *,
    control_id: str = "",
    now: datetime | None = None,
) -> str:
    """The ACK for a message, as HL7 text with CR segment separators.

    With `header` None (no usable MSH) a v2.5 AR is built around `control_id`.
    """
    now = now or datetime.now(UTC)
    if header is None:
        sep, enc, version, trigger, processing = "|", "^~\\&", "2.5", "", "P"
        sending = ("", "", "", "")
        enhanced, charset = False, ""
        echoed = control_id
    else:
        sep, enc = header.field_sep, header.encoding_chars
        version = header.version or "2.5"
        trigger, processing = header.trigger, header.processing_id or "P"
        sending = (header.receiving_application, header.receiving_facility,
                   header.sending_application, header.sending_facility)
        enhanced, charset = header.enhanced_mode, header.charset_field
        echoed = header.control_id
    comp = enc[0]
    code = ack_code(outcome, enhanced)
    msh = ["MSH", enc, *sending, now.strftime("%Y%m%d%H%M%S+0000"), "",
           comp.join(["ACK", trigger, "ACK"]) if trigger else "ACK",
           new_control_id(), processing, version]
    if charset:
        msh += ["", "", "", "", "", charset]
    msa = ["MSA", code, escape(echoed, sep, enc)]
    if errors and not _version_at_least(version, 2, 4):
        msa.append(escape(errors[0].text, sep, enc)[:80])  # MSA-3, withdrawn after v2.4
    segments = [sep.join(msh), sep.join(msa)]
    segments += [_err_segment(e, version, sep, enc) for e in errors]
    return "\r".join(segments) + "\r"
