"""What to answer a message at receipt, from its header alone."""

from __future__ import annotations

from dataclasses import dataclass

from integrations.hl7.acks import AckError, Outcome
from integrations.hl7.header import Header, HeaderError, read_header
from integrations.hl7.parse import is_used


@dataclass(frozen=True, slots=True)
class Assessment:
    """The receipt decision: the header (None if unreadable), and the answer to give."""

    header: Header | None
    outcome: Outcome
    errors: tuple[AckError, ...]
    used: bool  # Clarion reads this type's content
    control_id: str  # MSH-10, or the best guess for an unreadable message

    @property
    def ignored(self) -> bool:
        return self.outcome is Outcome.ACCEPT and not self.used


def assess(raw: bytes, accepted_processing_ids: frozenset[str] = frozenset({"P", "T"})) -> Assessment:
    """Read the MSH and decide: accept, error (AE/CE) or reject (AR/CR)."""
    try:
        header = read_header(raw)
    except HeaderError as exc:
        error = AckError(exc.hl7_code, f"message rejected: {exc}", location="MSH")
        return Assessment(None, Outcome.REJECT, (error,), False, exc.control_id)

    def answer(outcome: Outcome, code: str, text: str, location: str) -> Assessment:
        return Assessment(header, outcome, (AckError(code, text, location=location),),
                          False, header.control_id)

    if not header.message_type:
        return answer(Outcome.ERROR, "101", "MSH-9 message type is empty", "MSH^1^9")
    if not header.control_id:
        return answer(Outcome.ERROR, "101", "MSH-10 message control ID is empty", "MSH^1^10")
    if not header.version.startswith("2."):
        return answer(Outcome.REJECT, "203",
                      f"MSH-12 version {header.version!r} is not HL7 v2.x", "MSH^1^12")
    if header.processing_id.upper() not in accepted_processing_ids:
        accepted = ", ".join(sorted(accepted_processing_ids))
        return answer(Outcome.REJECT, "202",
                      f"MSH-11 processing ID {header.processing_id!r} is not accepted here "
                      f"(accepted: {accepted})", "MSH^1^11")
    return Assessment(header, Outcome.ACCEPT, (), is_used(header.message_type, header.trigger),
                      header.control_id)
