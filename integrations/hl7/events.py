"""Domain events read out of HL7 v2 messages.

The parser turns one message into one `ParsedMessage`: who the patient is, what happened
to the visit, and which results and diagnoses it carries. The store applies these; nothing
downstream touches HL7 syntax again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from integrations.hl7.waveform import Waveform


class AdtAction(StrEnum):
    """What an ADT trigger does to the patient and the visit."""

    UPSERT = "upsert"  # A01, A04, A05, A08, A28, A31: create or update patient (and visit)
    TRANSFER = "transfer"  # A02
    DISCHARGE = "discharge"  # A03
    CANCEL_ADMIT = "cancel_admit"  # A11
    CANCEL_DISCHARGE = "cancel_discharge"  # A13
    MERGE = "merge"  # A40


ADT_ACTIONS: dict[str, AdtAction] = {
    "A01": AdtAction.UPSERT,
    "A04": AdtAction.UPSERT,
    "A05": AdtAction.UPSERT,
    "A08": AdtAction.UPSERT,
    "A28": AdtAction.UPSERT,
    "A31": AdtAction.UPSERT,
    "A02": AdtAction.TRANSFER,
    "A03": AdtAction.DISCHARGE,
    "A11": AdtAction.CANCEL_ADMIT,
    "A13": AdtAction.CANCEL_DISCHARGE,
    "A40": AdtAction.MERGE,
}


@dataclass(frozen=True, slots=True)
class Identifier:
    """One patient identifier (PID-3 repetition): value, assigning authority, type code."""

    value: str
    authority: str = ""
    type_code: str = ""


@dataclass(frozen=True, slots=True)
class PatientInfo:
    """Demographics from PID."""

    identifiers: tuple[Identifier, ...]
    family_name: str = ""
    given_name: str = ""
    birth_date: date | None = None
    sex: str = ""
    race: str = ""
    ethnicity: str = ""
    deceased: bool = False


@dataclass(frozen=True, slots=True)
class VisitInfo:
    """The visit from PV1. Locations are rendered as `unit^room^bed^facility`."""

    visit_number: str = ""
    patient_class: str = ""
    location: str = ""
    prior_location: str = ""
    attending: str = ""  # PV1-7 provider id
    referring: str = ""  # PV1-8
    admitting: str = ""  # PV1-17
    admitted_at: datetime | None = None
    discharged_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """One OBX result.

    `order_key` identifies the order the result belongs to (filler, else placer order number)
    so that a corrected result replaces the one it corrects.
    """

    set_id: str
    value_type: str
    code: str
    coding_system: str
    display: str
    sub_id: str = ""
    loinc: str = ""  # the LOINC code, from the primary or the alternate coding
    value_text: str = ""
    value_num: float | None = None
    comparator: str = ""  # from SN values: <, >, <=, >=
    units: str = ""
    reference_range: str = ""
    abnormal_flag: str = ""
    status: str = ""  # OBX-11: F final, C corrected, P preliminary, X cannot obtain, D delete
    observed_at: datetime | None = None
    order_key: str = ""


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """One DG1 diagnosis."""

    code: str
    coding_system: str
    display: str = ""
    diagnosed_at: datetime | None = None
    diagnosis_type: str = ""  # DG1-6: A admitting, W working, F final; P a problem (PRB)


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Everything Clarion uses about one patient in an ADT or ORU message.

    A message yields one of these per patient it names: an ORU may carry several
    patient-result groups, and an A40 several PID/MRG pairs.
    """

    message_type: str
    trigger: str
    patient: PatientInfo
    adt_action: AdtAction | None = None
    visit: VisitInfo | None = None
    merged_identifiers: tuple[Identifier, ...] = ()  # MRG-1 of an A40: the patient that goes away
    observations: tuple[Observation, ...] = field(default_factory=tuple)
    diagnoses: tuple[Diagnosis, ...] = field(default_factory=tuple)
    event_time: datetime | None = None
    waveforms: tuple[Waveform, ...] = field(default_factory=tuple)  # ECGs (PCD-01, aECG ...)


class MessageContentError(ValueError):
    """The message is readable but its content cannot be used (e.g. no patient identifier).

    `hl7_code` is the HL7 table 0357 error code; `location` names the field (e.g. "PID-3").
    """

    def __init__(self, text: str, *, hl7_code: str = "207", location: str = "") -> None:
        super().__init__(text)
        self.hl7_code = hl7_code
        self.location = location
