"""Full parse of ADT and ORU messages into domain events, with python-hl7.

python-hl7 parses a 25-segment ORU in under 2 ms here, where hl7apy takes ~36 ms
(DESIGN.md); hl7apy is kept for building and validating messages only.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any

import hl7
import hl7.util

from integrations.hl7.events import (
    ADT_ACTIONS,
    AdtAction,
    Diagnosis,
    Identifier,
    MessageContentError,
    Observation,
    ParsedMessage,
    PatientInfo,
    VisitInfo,
)
from integrations.hl7.waveform import (
    WAVEFORM_TYPES,
    WaveformGroup,
    is_attribute,
    is_ecg_document,
    set_samples_aside,
)

# python-hl7 logs a value it cannot unescape with the field's whole text: patient data,
# which no log may hold. The value is still read, without the sequence it could not.
logging.getLogger(hl7.util.logger.name).disabled = True

# Types and triggers whose content Clarion uses. Everything else is stored and ignored.
USED_TRIGGERS: dict[str, frozenset[str]] = {
    "ADT": frozenset(ADT_ACTIONS),
    # R01 results, with ECG waveforms among them (IHE PCD-01); W01 waveforms alone.
    "ORU": frozenset({"R01", "W01"}),
    # Problem list: PC1 add, PC2 update (PRB segments, read as diagnoses).
    "PPR": frozenset({"PC1", "PC2"}),
}

_CODING_SYSTEMS = {
    "LN": "LOINC", "LOINC": "LOINC",
    "I9": "ICD-9", "I9C": "ICD-9", "ICD9": "ICD-9", "ICD-9": "ICD-9", "ICD9CM": "ICD-9",
    "I10": "ICD-10", "I10C": "ICD-10", "ICD10": "ICD-10", "ICD-10": "ICD-10",
    "ICD10CM": "ICD-10", "ICD-10-CM": "ICD-10", "I10P": "ICD-10-PCS",
    "SCT": "SNOMED-CT", "SNM": "SNOMED-CT", "SNOMED": "SNOMED-CT", "SNOMEDCT": "SNOMED-CT",
}


def is_used(message_type: str, trigger: str) -> bool:
    """Whether Clarion reads this message's content (otherwise: stored raw, ignored)."""
    return trigger in USED_TRIGGERS.get(message_type, frozenset())


@functools.lru_cache(maxsize=256)  # a feed uses a handful of spellings, on every OBX
def normalize_coding_system(system: str) -> str:
    """Map the many spellings of a coding system (HL7 table 0396 and local habits) to one."""
    return _CODING_SYSTEMS.get(system.strip().upper().replace(" ", ""), system.strip())


class Segment:
    """One segment: split into fields when the message is read, each field split into
    repetitions, components and subcomponents only where it is read.

    python-hl7 built an object for every component of every field (a 20-OBX result
    message is ~480 of them, more than half of the processing time); Clarion reads a few
    fields of each segment. The answers are python-hl7's for the same indices (tested
    against it, tests/integrations/test_parse_segments.py), except that a subcomponent
    past the first of a component that has none is empty, as HL7 says, where python-hl7
    gave the whole component."""

    __slots__ = ("fields", "name", "_repetition", "_component", "_sub")

    def __init__(self, line: str, field: str, separators: tuple[str, str, str]) -> None:
        fields = line.split(field)
        if fields[0] == "MSH":  # MSH-1 is the field separator itself: MSH-n is fields[n]
            fields.insert(1, field)
        self.fields = fields
        self.name = fields[0].strip().upper()
        self._repetition, self._component, self._sub = separators

    def field(self, index: int) -> str:
        """Field `index` as sent ('' where absent)."""
        return self.fields[index] if index < len(self.fields) else ""

    def repetitions(self, index: int) -> list[str]:
        """The field's repetitions that are not empty."""
        return [rep for rep in self.field(index).split(self._repetition) if rep]

    def get(self, index: int, component: int = 1, repetition: int = 1, sub: int = 1) -> str:
        """One value, '' where absent. Indices are 1-based, as in HL7."""
        text = self.fields[index] if index < len(self.fields) else ""
        if self._component not in text and self._repetition not in text and \
                self._sub not in text:  # most fields: a plain value
            return text if component == repetition == sub == 1 else ""
        reps = text.split(self._repetition)
        return self.part(reps[repetition - 1], component, sub) if repetition <= len(reps) else ""

    def part(self, rep: str, component: int = 1, sub: int = 1) -> str:
        """One component (subcomponent) of a repetition, '' where absent."""
        components = rep.split(self._component)
        if component > len(components):
            return ""
        subs = components[component - 1].split(self._sub)
        return subs[sub - 1] if sub <= len(subs) else ""

    def components(self, index: int) -> list[str]:
        """The first repetition's components, each its first subcomponent: what
        `get(index, c)` gives for c = 1, 2, ... (a coded element read in one split)."""
        text = self.fields[index] if index < len(self.fields) else ""
        if self._repetition in text:
            text = text.split(self._repetition, 1)[0]
        components = text.split(self._component)
        if self._sub in text:
            return [c.split(self._sub, 1)[0] for c in components]
        return components


class Message:
    """A message's segments (`Segment`) and its escape sequences (HL7 2.10, python-hl7's
    unescaping)."""

    __slots__ = ("segments", "_escape", "_escapes")

    def __init__(self, text: str) -> None:
        text = text.strip()
        if text[:3] != "MSH" or len(text) < 4:
            raise ValueError(f"first segment is {text[:3]!r}, must be MSH")
        field = text[3]
        # MSH-2, as python-hl7 reads it: component, repetition, escape, subcomponent
        encoding = text[4:text.find(field, 4)]
        component = encoding[0] if len(encoding) > 0 else "^"
        repetition = encoding[1] if len(encoding) > 1 else "~"
        escape = encoding[2] if len(encoding) > 2 else "\\"
        sub = encoding[3] if len(encoding) > 3 else "&"
        separators = (repetition, component, sub)
        self.segments = [Segment(line, field, separators) for line in text.split("\r")]
        self._escape = escape
        self._escapes = hl7.Message(separator="\r", esc=escape,
                                    separators="\r" + field + repetition + component + sub)

    def unescape(self, value: str) -> str:
        if self._escape not in value:  # nearly every value
            return value
        return str(self._escapes.unescape(value))


@functools.lru_cache(maxsize=4096)  # a message repeats its times (every OBX-14, say)
def parse_timestamp(text: str, default_tz: tzinfo = UTC) -> datetime | None:
    """HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]) → aware UTC datetime, or None."""
    text = text.strip()
    if not text:
        return None
    tz: tzinfo = default_tz
    for sign in "+-":
        pos = text.find(sign, 4)
        if pos > 0:
            offset = text[pos + 1:]
            text = text[:pos]
            if len(offset) == 4 and offset.isdigit():
                minutes = int(offset[:2]) * 60 + int(offset[2:])
                tz = timezone(timedelta(minutes=-minutes if sign == "-" else minutes))
            break
    digits, _, fraction = text.partition(".")
    if not digits.isdigit() or len(digits) < 4:
        return None
    digits = digits[:14]
    micro = int((fraction + "000000")[:6]) if fraction.isdigit() else 0
    try:
        return datetime(int(digits[0:4]), int(digits[4:6] or 1), int(digits[6:8] or 1),
                        int(digits[8:10] or 0), int(digits[10:12] or 0),
                        int(digits[12:14] or 0), micro, tzinfo=tz).astimezone(UTC)
    except ValueError:
        return None


def _parse_date(text: str) -> date | None:
    text = text.strip()[:8]
    if len(text) < 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def _cx(segment: Segment, rep: str) -> Identifier | None:
    value = segment.part(rep, 1).strip()
    if not value:
        return None
    authority = segment.part(rep, 4, 1).strip() or segment.part(rep, 4, 2).strip()
    return Identifier(value=value, authority=authority, type_code=segment.part(rep, 5).strip())


def _identifiers(segment: Segment, field: int) -> tuple[Identifier, ...]:
    found = (_cx(segment, rep) for rep in segment.repetitions(field))
    return tuple(i for i in found if i is not None)


def _patient(pid: Segment) -> PatientInfo:
    identifiers = (_identifiers(pid, 3) or _identifiers(pid, 2) or _identifiers(pid, 4))
    if not identifiers:
        raise MessageContentError("PID-3 has no patient identifier", hl7_code="101",
                                  location="PID^1^3")
    return PatientInfo(
        identifiers=identifiers,
        family_name=pid.get(5, 1, 1, 1).strip(),
        given_name=pid.get(5, 2).strip(),
        birth_date=_parse_date(pid.get(7)),
        sex=pid.get(8).strip().upper()[:1],
        race=pid.get(10).strip(),
        ethnicity=pid.get(22).strip(),
        deceased=pid.get(30).strip().upper() == "Y",
    )


def _location(segment: Segment, field: int) -> str:
    parts = [segment.get(field, c) for c in (1, 2, 3, 4)]
    return "^".join(parts).rstrip("^")


def _provider(segment: Segment, field: int) -> str:
    return segment.get(field, 1).strip() or segment.get(field, 2).strip()


def _visit(pv1: Segment, tz: tzinfo) -> VisitInfo:
    return VisitInfo(
        visit_number=pv1.get(19).strip(),
        patient_class=pv1.get(2).strip(),
        location=_location(pv1, 3),
        prior_location=_location(pv1, 6),
        attending=_provider(pv1, 7),
        referring=_provider(pv1, 8),
        admitting=_provider(pv1, 17),
        admitted_at=parse_timestamp(pv1.get(44), tz),
        discharged_at=parse_timestamp(pv1.get(45), tz),
    )


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _observation(message: Message, obx: Segment, value_type: str, obr: Segment | None,
                 order_key: str, fallback_time: datetime | None, tz: tzinfo) -> Observation:
    # OBX-3, a coded element: identifier, text, system, then the alternate three
    coded = obx.components(3) + ["", "", "", "", "", ""]
    code, display = coded[0].strip(), coded[1].strip()
    system = normalize_coding_system(coded[2])
    alt_code, alt_system = coded[3].strip(), normalize_coding_system(coded[5])
    if not code and alt_code:
        code, system, display = alt_code, alt_system, display or coded[4]
    loinc = code if system == "LOINC" else (alt_code if alt_system == "LOINC" else "")
    value_num: float | None = None
    comparator = ""
    reps = obx.repetitions(5)
    if value_type == "NM":
        value_text = obx.part(reps[0]) if reps else ""
        value_num = _number(value_text)
    elif value_type == "SN":
        first = reps[0] if reps else ""
        comparator, num1 = obx.part(first, 1).strip(), obx.part(first, 2).strip()
        separator, num2 = obx.part(first, 3).strip(), obx.part(first, 4).strip()
        value_text = f"{comparator}{num1}{separator}{num2}"
        value_num = _number(num1) if not separator else None
    elif value_type in ("CE", "CWE", "CNE", "CF"):
        value_text = "; ".join(
            message.unescape(obx.part(r, 2) or obx.part(r, 1)) for r in reps)
    elif value_type == "ED":
        size = sum(len(r) for r in reps)
        value_text = f"[encapsulated data, {size} characters, kept in the raw message]"
    else:
        value_text = "\n".join(message.unescape(r) for r in reps)
    observed_at = parse_timestamp(obx.get(14), tz)
    if obr is not None:
        observed_at = observed_at or parse_timestamp(obr.get(7), tz)
    return Observation(
        set_id=obx.get(1).strip(),
        value_type=value_type,
        code=code,
        coding_system=system,
        display=message.unescape(display),
        sub_id=obx.get(4).strip(),
        loinc=loinc,
        value_text=value_text,
        value_num=value_num,
        comparator=comparator,
        units=message.unescape(obx.get(6, 1).strip()),
        reference_range=message.unescape(obx.get(7).strip()),
        abnormal_flag=obx.get(8).strip(),
        status=obx.get(11).strip().upper(),
        observed_at=observed_at or fallback_time,
        order_key=order_key,
    )


def _order_key(obr: Segment | None) -> str:
    if obr is None:
        return ""
    filler, placer = obr.get(3, 1).strip(), obr.get(2, 1).strip()
    return f"F:{filler}" if filler else (f"P:{placer}" if placer else "")


def _waveform_part(groups: dict[int, WaveformGroup], obx: Segment, value_type: str,
                   obr: Segment | None, fallback_time: datetime | None, tz: tzinfo,
                   aside: dict[str, str], separators: str) -> bool:
    """Add `obx` to its OBR's waveform group if it is part of an ECG recording: samples
    (NA, MA), an attribute of samples (MDC_ATTR_*), an ECG document (ED). False if not."""
    key = id(obr)
    if value_type == "ED" and not is_ecg_document(obx.get(5, 3), obx.get(5, 2)):
        return False
    if value_type not in WAVEFORM_TYPES and value_type != "ED":
        mnemonic = is_attribute(obx.field(3))
        if not mnemonic or key not in groups:
            return False
        groups[key].add_attribute(mnemonic, obx.get(4).strip(), obx.get(5),
                                  obx.get(6, 2).strip() or obx.get(6, 1).strip())
        return True
    if key not in groups:
        started = parse_timestamp(obr.get(7), tz) if obr is not None else None
        groups[key] = WaveformGroup(_order_key(obr), started or fallback_time)
        groups[key].separators = separators
    observed_at = parse_timestamp(obx.get(14), tz)
    if value_type == "ED":
        groups[key].add_document(obx.get(5, 2), obx.get(5, 3), obx.get(5, 4),
                                 obx.get(5, 5), observed_at)
    else:
        raw = obx.field(5)
        groups[key].add_samples(obx.field(3), obx.get(4).strip(), aside.get(raw, raw),
                                obx.get(6, 2).strip() or obx.get(6, 1).strip(),
                                observed_at)
    return True


def _diagnosis(message: Message, dg1: Segment, tz: tzinfo) -> Diagnosis | None:
    code = dg1.get(3, 1).strip()
    if not code:
        return None
    system = dg1.get(3, 3).strip() or dg1.get(2).strip()
    return Diagnosis(
        code=code,
        coding_system=normalize_coding_system(system),
        display=message.unescape(dg1.get(3, 2).strip() or dg1.get(4).strip()),
        diagnosed_at=parse_timestamp(dg1.get(5), tz),
        diagnosis_type=dg1.get(6).strip(),
    )


def _problem(message: Message, prb: Segment, tz: tzinfo) -> Diagnosis | None:
    """A PRB (problem list entry) as a diagnosis: PRB-3 the problem, PRB-16 its onset (else
    PRB-7 when it was established, else PRB-2 the action's time). A deletion (PRB-1 "DE")
    adds nothing."""
    code = prb.get(3, 1).strip()
    if not code or prb.get(1).strip().upper() == "DE":
        return None
    return Diagnosis(
        code=code,
        coding_system=normalize_coding_system(prb.get(3, 3)),
        display=message.unescape(prb.get(3, 2).strip()),
        diagnosed_at=(parse_timestamp(prb.get(16), tz) or parse_timestamp(prb.get(7), tz)
                      or parse_timestamp(prb.get(2), tz)),
        diagnosis_type="P",
    )


def parse_message(text: str, message_type: str, trigger: str,
                  default_tz: tzinfo = UTC) -> tuple[ParsedMessage, ...]:
    """Parse a used ADT/ORU message (CR-separated text) into one event per patient.

    Raises `MessageContentError` when the content cannot be used.
    """
    text, aside = set_samples_aside(text)
    try:
        message = Message(text)
    except ValueError as exc:
        raise MessageContentError(f"message could not be parsed: {exc}", hl7_code="100") from exc
    msh = message.segments[0]
    separators = text[4:6] if len(text) > 5 else "^~"  # MSH-2: component, repetition
    message_time = parse_timestamp(msh.get(7), default_tz)
    action = ADT_ACTIONS.get(trigger) if message_type == "ADT" else None
    event_time = message_time
    results: list[ParsedMessage] = []
    current: dict[str, Any] | None = None
    obr: Segment | None = None
    order_key = ""  # the OBR's, for its results

    def close() -> None:
        if current is not None:
            results.append(ParsedMessage(
                message_type=message_type, trigger=trigger, patient=current["patient"],
                adt_action=action, visit=current["visit"],
                merged_identifiers=current["merged"],
                observations=tuple(current["obs"]), diagnoses=tuple(current["dg"]),
                event_time=event_time,
                waveforms=tuple(w for g in current["waves"].values() for w in g.waveforms())))

    for segment in message.segments:
        name = segment.name
        if name == "EVN":
            event_time = (parse_timestamp(segment.get(6), default_tz)
                          or parse_timestamp(segment.get(2), default_tz) or message_time)
        elif name == "PID":
            close()
            current = {"patient": _patient(segment), "visit": None, "merged": (),
                       "obs": [], "dg": [], "waves": {}}
            obr, order_key = None, ""
        elif current is None:
            continue
        elif name == "PV1":
            current["visit"] = _visit(segment, default_tz)
        elif name == "MRG":
            current["merged"] = _identifiers(segment, 1)
        elif name == "OBR":
            obr, order_key = segment, _order_key(segment)
        elif name == "OBX":
            value_type = segment.get(2).strip().upper()
            if not _waveform_part(current["waves"], segment, value_type, obr, event_time,
                                  default_tz, aside, separators):
                current["obs"].append(_observation(message, segment, value_type, obr,
                                                   order_key, event_time, default_tz))
        elif name in ("DG1", "PRB"):
            diagnosis = (_diagnosis if name == "DG1" else _problem)(message, segment, default_tz)
            if diagnosis is not None:
                current["dg"].append(diagnosis)
    close()
    if not results:
        raise MessageContentError(f"{message_type}^{trigger} has no PID segment",
                                  hl7_code="100", location="PID")
    if action is AdtAction.MERGE:
        for result in results:
            if not result.merged_identifiers:
                raise MessageContentError("A40 without a usable MRG-1 (prior patient id)",
                                          hl7_code="101", location="MRG^1^1")
    if action in (AdtAction.TRANSFER, AdtAction.DISCHARGE, AdtAction.CANCEL_ADMIT,
                  AdtAction.CANCEL_DISCHARGE):
        for result in results:
            if result.visit is None:
                raise MessageContentError(f"ADT^{trigger} without a PV1 segment",
                                          hl7_code="100", location="PV1")
    return tuple(results)
