"""Full parse of ADT and ORU messages into domain events, with python-hl7.

python-hl7 parses a 25-segment ORU in under 2 ms here, where hl7apy takes ~36 ms
(DESIGN.md); hl7apy is kept for building and validating messages only.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any

import hl7

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


def normalize_coding_system(system: str) -> str:
    """Map the many spellings of a coding system (HL7 table 0396 and local habits) to one."""
    return _CODING_SYSTEMS.get(system.strip().upper().replace(" ", ""), system.strip())


def _descend(value: Any, indices: tuple[int, ...]) -> str:
    """Walk python-hl7's nested containers by 1-based indices; '' where absent."""
    for index in indices:
        if isinstance(value, str):
            return value if index == 1 else ""
        try:
            value = value[index - 1]
        except IndexError:
            return ""
    return value if isinstance(value, str) else str(value)


def _get(segment: Any, field: int, component: int = 1, repetition: int = 1,
         sub: int = 1) -> str:
    """One value of a python-hl7 segment, '' where absent. Indices are 1-based, as in HL7."""
    try:
        value = segment[field]
    except IndexError:
        return ""
    return _descend(value, (repetition, component, sub))


def _repetitions(segment: Any, field: int) -> list[Any]:
    try:
        value = segment[field]
    except IndexError:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [rep for rep in value if str(rep)]


def _rep_get(rep: Any, component: int = 1, sub: int = 1) -> str:
    return _descend(rep, (component, sub))


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


def _cx(rep: Any) -> Identifier | None:
    value = _rep_get(rep, 1).strip()
    if not value:
        return None
    authority = _rep_get(rep, 4, 1).strip() or _rep_get(rep, 4, 2).strip()
    return Identifier(value=value, authority=authority, type_code=_rep_get(rep, 5).strip())


def _identifiers(segment: Any, field: int) -> tuple[Identifier, ...]:
    found = (_cx(rep) for rep in _repetitions(segment, field))
    return tuple(i for i in found if i is not None)


def _patient(pid: Any) -> PatientInfo:
    identifiers = (_identifiers(pid, 3) or _identifiers(pid, 2) or _identifiers(pid, 4))
    if not identifiers:
        raise MessageContentError("PID-3 has no patient identifier", hl7_code="101",
                                  location="PID^1^3")
    return PatientInfo(
        identifiers=identifiers,
        family_name=_get(pid, 5, 1, 1, 1).strip(),
        given_name=_get(pid, 5, 2).strip(),
        birth_date=_parse_date(_get(pid, 7)),
        sex=_get(pid, 8).strip().upper()[:1],
        race=_get(pid, 10).strip(),
        ethnicity=_get(pid, 22).strip(),
        deceased=_get(pid, 30).strip().upper() == "Y",
    )


def _location(segment: Any, field: int) -> str:
    parts = [_get(segment, field, c) for c in (1, 2, 3, 4)]
    return "^".join(parts).rstrip("^")


def _provider(segment: Any, field: int) -> str:
    return _get(segment, field, 1).strip() or _get(segment, field, 2).strip()


def _visit(pv1: Any, tz: tzinfo) -> VisitInfo:
    return VisitInfo(
        visit_number=_get(pv1, 19).strip(),
        patient_class=_get(pv1, 2).strip(),
        location=_location(pv1, 3),
        prior_location=_location(pv1, 6),
        attending=_provider(pv1, 7),
        referring=_provider(pv1, 8),
        admitting=_provider(pv1, 17),
        admitted_at=parse_timestamp(_get(pv1, 44), tz),
        discharged_at=parse_timestamp(_get(pv1, 45), tz),
    )


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _observation(message: Any, obx: Any, obr: Any | None, fallback_time: datetime | None,
                 tz: tzinfo) -> Observation:
    value_type = _get(obx, 2).strip().upper()
    code, display = _get(obx, 3, 1).strip(), _get(obx, 3, 2).strip()
    system = normalize_coding_system(_get(obx, 3, 3))
    alt_code, alt_system = _get(obx, 3, 4).strip(), normalize_coding_system(_get(obx, 3, 6))
    if not code and alt_code:
        code, system, display = alt_code, alt_system, display or _get(obx, 3, 5)
    loinc = code if system == "LOINC" else (alt_code if alt_system == "LOINC" else "")
    value_num: float | None = None
    comparator = ""
    reps = _repetitions(obx, 5)
    if value_type == "NM":
        value_text = _rep_get(reps[0]) if reps else ""
        value_num = _number(value_text)
    elif value_type == "SN":
        first = reps[0] if reps else ""
        comparator, num1 = _rep_get(first, 1).strip(), _rep_get(first, 2).strip()
        separator, num2 = _rep_get(first, 3).strip(), _rep_get(first, 4).strip()
        value_text = f"{comparator}{num1}{separator}{num2}"
        value_num = _number(num1) if not separator else None
    elif value_type in ("CE", "CWE", "CNE", "CF"):
        value_text = "; ".join(
            message.unescape(_rep_get(r, 2) or _rep_get(r, 1)) for r in reps)
    elif value_type == "ED":
        size = sum(len(str(r)) for r in reps)
        value_text = f"[encapsulated data, {size} characters, kept in the raw message]"
    else:
        value_text = "\n".join(message.unescape(str(r)) for r in reps)
    order_key = _order_key(obr)
    observed_at = parse_timestamp(_get(obx, 14), tz)
    if obr is not None:
        observed_at = observed_at or parse_timestamp(_get(obr, 7), tz)
    return Observation(
        set_id=_get(obx, 1).strip(),
        value_type=value_type,
        code=code,
        coding_system=system,
        display=message.unescape(display),
        sub_id=_get(obx, 4).strip(),
        loinc=loinc,
        value_text=value_text,
        value_num=value_num,
        comparator=comparator,
        units=message.unescape(_get(obx, 6, 1).strip()),
        reference_range=message.unescape(_get(obx, 7).strip()),
        abnormal_flag=_get(obx, 8).strip(),
        status=_get(obx, 11).strip().upper(),
        observed_at=observed_at or fallback_time,
        order_key=order_key,
    )


def _order_key(obr: Any | None) -> str:
    if obr is None:
        return ""
    filler, placer = _get(obr, 3, 1).strip(), _get(obr, 2, 1).strip()
    return f"F:{filler}" if filler else (f"P:{placer}" if placer else "")


def _waveform_part(groups: dict[int, WaveformGroup], obx: Any, obr: Any | None,
                   fallback_time: datetime | None, tz: tzinfo,
                   aside: dict[str, str], separators: str) -> bool:
    """Add `obx` to its OBR's waveform group if it is part of an ECG recording: samples
    (NA, MA), an attribute of samples (MDC_ATTR_*), an ECG document (ED). False if not."""
    value_type = _get(obx, 2).strip().upper()
    key = id(obr)
    if value_type == "ED" and not is_ecg_document(_get(obx, 5, 3), _get(obx, 5, 2)):
        return False
    if value_type not in WAVEFORM_TYPES and value_type != "ED":
        mnemonic = is_attribute(_field(obx, 3))
        if not mnemonic or key not in groups:
            return False
        groups[key].add_attribute(mnemonic, _get(obx, 4).strip(), _get(obx, 5),
                                  _get(obx, 6, 2).strip() or _get(obx, 6, 1).strip())
        return True
    if key not in groups:
        started = parse_timestamp(_get(obr, 7), tz) if obr is not None else None
        groups[key] = WaveformGroup(_order_key(obr), started or fallback_time)
        groups[key].separators = separators
    observed_at = parse_timestamp(_get(obx, 14), tz)
    if value_type == "ED":
        groups[key].add_document(_get(obx, 5, 2), _get(obx, 5, 3), _get(obx, 5, 4),
                                 _get(obx, 5, 5), observed_at)
    else:
        raw = str(_field(obx, 5))
        groups[key].add_samples(_field(obx, 3), _get(obx, 4).strip(), aside.get(raw, raw),
                                _get(obx, 6, 2).strip() or _get(obx, 6, 1).strip(),
                                observed_at)
    return True


def _field(segment: Any, index: int) -> Any:
    try:
        return segment[index]
    except IndexError:
        return ""


def _diagnosis(message: Any, dg1: Any, tz: tzinfo) -> Diagnosis | None:
    code = _get(dg1, 3, 1).strip()
    if not code:
        return None
    system = _get(dg1, 3, 3).strip() or _get(dg1, 2).strip()
    return Diagnosis(
        code=code,
        coding_system=normalize_coding_system(system),
        display=message.unescape(_get(dg1, 3, 2).strip() or _get(dg1, 4).strip()),
        diagnosed_at=parse_timestamp(_get(dg1, 5), tz),
        diagnosis_type=_get(dg1, 6).strip(),
    )


def _problem(message: Any, prb: Any, tz: tzinfo) -> Diagnosis | None:
    """A PRB (problem list entry) as a diagnosis: PRB-3 the problem, PRB-16 its onset (else
    PRB-7 when it was established, else PRB-2 the action's time). A deletion (PRB-1 "DE")
    adds nothing."""
    code = _get(prb, 3, 1).strip()
    if not code or _get(prb, 1).strip().upper() == "DE":
        return None
    return Diagnosis(
        code=code,
        coding_system=normalize_coding_system(_get(prb, 3, 3)),
        display=message.unescape(_get(prb, 3, 2).strip()),
        diagnosed_at=(parse_timestamp(_get(prb, 16), tz) or parse_timestamp(_get(prb, 7), tz)
                      or parse_timestamp(_get(prb, 2), tz)),
        diagnosis_type="P",
    )


def parse_message(text: str, message_type: str, trigger: str,
                  default_tz: tzinfo = UTC) -> tuple[ParsedMessage, ...]:
    """Parse a used ADT/ORU message (CR-separated text) into one event per patient.

    Raises `MessageContentError` when the content cannot be used.
    """
    text, aside = set_samples_aside(text)
    try:
        message = hl7.parse(text)
    except Exception as exc:  # python-hl7 raises bare ParseException/IndexError variants
        raise MessageContentError(f"message could not be parsed: {exc}", hl7_code="100") from exc
    msh = message.segments("MSH")[0]
    separators = text[4:6] if len(text) > 5 else "^~"  # MSH-2: component, repetition
    message_time = parse_timestamp(_get(msh, 7), default_tz)
    action = ADT_ACTIONS.get(trigger) if message_type == "ADT" else None
    event_time = message_time
    results: list[ParsedMessage] = []
    current: dict[str, Any] | None = None
    obr: Any | None = None

    def close() -> None:
        if current is not None:
            results.append(ParsedMessage(
                message_type=message_type, trigger=trigger, patient=current["patient"],
                adt_action=action, visit=current["visit"],
                merged_identifiers=current["merged"],
                observations=tuple(current["obs"]), diagnoses=tuple(current["dg"]),
                event_time=event_time,
                waveforms=tuple(w for g in current["waves"].values() for w in g.waveforms())))

    for segment in message:
        name = str(segment[0]).strip().upper()
        if name == "EVN":
            event_time = (parse_timestamp(_get(segment, 6), default_tz)
                          or parse_timestamp(_get(segment, 2), default_tz) or message_time)
        elif name == "PID":
            close()
            current = {"patient": _patient(segment), "visit": None, "merged": (),
                       "obs": [], "dg": [], "waves": {}}
            obr = None
        elif current is None:
            continue
        elif name == "PV1":
            current["visit"] = _visit(segment, default_tz)
        elif name == "MRG":
            current["merged"] = _identifiers(segment, 1)
        elif name == "OBR":
            obr = segment
        elif name == "OBX":
            if not _waveform_part(current["waves"], segment, obr, event_time, default_tz,
                                  aside, separators):
                current["obs"].append(_observation(message, segment, obr, event_time,
                                                   default_tz))
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
