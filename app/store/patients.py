"""Applying parsed ADT/ORU content to the patient store, and reading a patient back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app import logs
from app.store.models import (
    DiagnosisRecord,
    Encounter,
    EncounterStatus,
    ObservationRecord,
    Patient,
    PatientIdentifier,
    utcnow,
)
from integrations.hl7.events import (
    AdtAction,
    Identifier,
    Observation,
    ParsedMessage,
    PatientInfo,
    VisitInfo,
)

_PERSON_ONLY = {"A28", "A31"}  # person administration: PV1 there is not a visit


def _survivor(session: Session, patient: Patient) -> Patient:
    seen = {patient.id}
    while patient.merged_into_id is not None:
        nxt = session.get(Patient, patient.merged_into_id)
        if nxt is None or nxt.id in seen:
            break
        seen.add(nxt.id)
        patient = nxt
    return patient


def find_patient(session: Session, identifiers: Sequence[Identifier]) -> Patient | None:
    """The (surviving) patient holding any of these (identifier, authority) pairs.

    The first identifier is the one the sender lists first (PID-3's first repetition) and
    wins when the pairs point at different patients.
    """
    if not identifiers:
        return None
    clauses = [and_(PatientIdentifier.value == i.value, PatientIdentifier.authority == i.authority)
               for i in identifiers]
    found = {(row.value, row.authority): row.patient_id
             for row in session.scalars(select(PatientIdentifier).where(or_(*clauses)))}
    for ident in identifiers:
        patient_id = found.get((ident.value, ident.authority))
        if patient_id is not None:
            patient = session.get(Patient, patient_id)
            if patient is not None:
                return _survivor(session, patient)
    return None


def find_by_identifier(session: Session, value: str, authority: str | None) -> list[Patient]:
    """Patients with this identifier; any authority when `authority` is None."""
    query = select(PatientIdentifier).where(PatientIdentifier.value == value)
    if authority is not None:
        query = query.where(PatientIdentifier.authority == authority)
    patients: dict[int, Patient] = {}
    for row in session.scalars(query):
        patient = session.get(Patient, row.patient_id)
        if patient is not None:
            patient = _survivor(session, patient)
            patients[patient.id] = patient
    return list(patients.values())


def upsert_patient(session: Session, info: PatientInfo) -> Patient:
    """Find the patient by any identifier, or create them; update what the message says."""
    patient = find_patient(session, info.identifiers)
    if patient is None:
        patient = Patient()
        session.add(patient)
        session.flush()
    for attr in ("family_name", "given_name", "birth_date", "sex", "race", "ethnicity"):
        value = getattr(info, attr)
        if value:
            setattr(patient, attr, value)
    if info.deceased:
        patient.deceased = True
    patient.updated_at = utcnow()
    _attach_identifiers(session, patient, info.identifiers)
    return patient


def _attach_identifiers(session: Session, patient: Patient,
                        identifiers: Sequence[Identifier]) -> None:
    clauses = [and_(PatientIdentifier.value == i.value, PatientIdentifier.authority == i.authority)
               for i in identifiers]
    if not clauses:
        return
    known = {(row.value, row.authority): row for row in
             session.scalars(select(PatientIdentifier).where(or_(*clauses)))}
    for ident in dict.fromkeys(identifiers):
        existing = known.get((ident.value, ident.authority))
        if existing is None:
            session.add(PatientIdentifier(patient_id=patient.id, value=ident.value,
                                          authority=ident.authority, type_code=ident.type_code))
        elif existing.patient_id != patient.id:
            owner = session.get(Patient, existing.patient_id)
            if owner is not None and _survivor(session, owner).id != patient.id:
                logs.store.warning("identifier %s already belongs to another patient; "
                                   "not moved (merge with ADT^A40 if they are the same person)",
                                   logs.pseudonym(ident.value, ident.authority))
    session.flush()


def _find_encounter(session: Session, patient: Patient, visit: VisitInfo) -> Encounter | None:
    query = select(Encounter).where(Encounter.patient_id == patient.id)
    if visit.visit_number:
        query = query.where(Encounter.visit_number == visit.visit_number)
    else:
        query = query.where(Encounter.status == EncounterStatus.ACTIVE.value)
    return session.scalars(query.order_by(Encounter.id.desc()).limit(1)).first()


def _encounter(session: Session, patient: Patient, visit: VisitInfo, trigger: str) -> Encounter:
    encounter = _find_encounter(session, patient, visit)
    if encounter is None:
        encounter = Encounter(patient_id=patient.id, visit_number=visit.visit_number,
                              status=EncounterStatus.ACTIVE.value)
        session.add(encounter)
    for attr in ("patient_class", "location", "prior_location", "attending", "referring",
                 "admitting", "admitted_at"):
        value = getattr(visit, attr)
        if value:
            setattr(encounter, attr, value)
    encounter.last_event = trigger
    encounter.updated_at = utcnow()
    session.flush()
    return encounter


def _apply_visit(session: Session, patient: Patient, parsed: ParsedMessage) -> Encounter | None:
    visit, action = parsed.visit, parsed.adt_action
    if visit is None or parsed.trigger in _PERSON_ONLY:
        return None
    if action is None:  # an ORU: link results to a numbered visit, never invent one
        return _encounter(session, patient, visit, parsed.trigger) if visit.visit_number else None
    if action is AdtAction.TRANSFER:
        current = _find_encounter(session, patient, visit)
        previous = current.location if current is not None else ""
        encounter = _encounter(session, patient, visit, parsed.trigger)
        encounter.prior_location = visit.prior_location or previous
        encounter.location = visit.location or encounter.location
        encounter.status = EncounterStatus.ACTIVE.value
        return encounter
    encounter = _encounter(session, patient, visit, parsed.trigger)
    if action is AdtAction.DISCHARGE:
        encounter.status = EncounterStatus.DISCHARGED.value
        encounter.discharged_at = visit.discharged_at or parsed.event_time or utcnow()
    elif action is AdtAction.CANCEL_ADMIT:
        encounter.status = EncounterStatus.CANCELLED.value
    elif action is AdtAction.CANCEL_DISCHARGE:
        encounter.status = EncounterStatus.ACTIVE.value
        encounter.discharged_at = None
    elif parsed.trigger in ("A01", "A04", "A05") and encounter.status != \
            EncounterStatus.DISCHARGED.value:
        encounter.status = EncounterStatus.ACTIVE.value
    return encounter


def _merge(session: Session, survivor: Patient, merged_ids: Sequence[Identifier]) -> None:
    """ADT^A40: the merged patient's history, visits and identifiers move to the survivor."""
    merged = find_patient(session, merged_ids)
    if merged is None or merged.id == survivor.id:
        # Not known here yet: remember the old identifiers, so later messages find the survivor.
        _attach_identifiers(session, survivor, merged_ids)
        return
    for table in (Encounter, ObservationRecord, DiagnosisRecord, PatientIdentifier):
        session.execute(update(table).where(table.patient_id == merged.id)  # type: ignore[attr-defined]
                        .values(patient_id=survivor.id))
    merged.merged_into_id = survivor.id
    merged.updated_at = utcnow()
    session.flush()
    session.expire_all()
    logs.store.info("merged patient %d into %d", merged.id, survivor.id)


def _result_key(obs: Observation) -> str:
    anchor = obs.order_key or (obs.observed_at.isoformat() if obs.observed_at else "")
    return f"{anchor}|{obs.coding_system}|{obs.code}|{obs.sub_id}"[:600]


def _store_observations(session: Session, patient: Patient, encounter: Encounter | None,
                        message_id: int, observations: Sequence[Observation]) -> None:
    """Insert a message's results; each supersedes the current result with the same key."""
    if not observations:
        return
    keys = [_result_key(obs) for obs in observations]
    previous: dict[str, list[ObservationRecord]] = {}
    for old in session.scalars(select(ObservationRecord).where(
            ObservationRecord.patient_id == patient.id,
            ObservationRecord.result_key.in_(set(keys)),
            ObservationRecord.is_current.is_(True))):
        previous.setdefault(old.result_key, []).append(old)
    records = []
    for key, obs in zip(keys, observations, strict=True):
        records.append(ObservationRecord(
            patient_id=patient.id, encounter_id=encounter.id if encounter else None,
            message_id=message_id, result_key=key, set_id=obs.set_id[:16], code=obs.code[:128],
            coding_system=obs.coding_system[:64], loinc=obs.loinc[:16],
            display=obs.display[:400], sub_id=obs.sub_id[:32], value_type=obs.value_type[:8],
            value_text=obs.value_text, value_num=obs.value_num, comparator=obs.comparator[:4],
            units=obs.units[:64], reference_range=obs.reference_range[:128],
            abnormal_flag=obs.abnormal_flag[:16], status=obs.status[:4],
            observed_at=obs.observed_at,
            # D: the result was deleted; keep the record of it, but it is no longer a result.
            is_current=obs.status != "D"))
    session.add_all(records)
    session.flush()
    latest: dict[str, ObservationRecord] = {}
    for key, record in zip(keys, records, strict=True):
        # A correction (C), a final after a preliminary, a deletion: the newer one wins,
        # also within one message.
        for old in previous.get(key, []) + ([latest[key]] if key in latest else []):
            old.is_current = False
            old.superseded_by_id = record.id
        latest[key] = record


def _store_diagnosis(session: Session, patient: Patient, encounter: Encounter | None,
                     message_id: int, code: str, system: str, display: str,
                     diagnosed_at: datetime | None, dx_type: str) -> None:
    exists = session.scalar(select(DiagnosisRecord.id).where(
        DiagnosisRecord.patient_id == patient.id, DiagnosisRecord.code == code,
        DiagnosisRecord.coding_system == system,
        DiagnosisRecord.diagnosed_at.is_(None) if diagnosed_at is None
        else DiagnosisRecord.diagnosed_at == diagnosed_at).limit(1))
    if exists is None:  # ADT updates repeat the same DG1s; keep one of each
        session.add(DiagnosisRecord(
            patient_id=patient.id, encounter_id=encounter.id if encounter else None,
            message_id=message_id, code=code[:64], coding_system=system[:64],
            display=display[:400], diagnosed_at=diagnosed_at, diagnosis_type=dx_type[:8]))


def apply_parsed(session: Session, message_id: int,
                 parsed: Sequence[ParsedMessage]) -> list[int]:
    """Apply one message's content; returns the ids of the patients it changed."""
    changed: list[int] = []
    for item in parsed:
        patient = upsert_patient(session, item.patient)
        if item.adt_action is AdtAction.MERGE:
            _merge(session, patient, item.merged_identifiers)
            patient = session.get(Patient, patient.id) or patient
        encounter = _apply_visit(session, patient, item)
        _store_observations(session, patient, encounter, message_id, item.observations)
        for dx in item.diagnoses:
            _store_diagnosis(session, patient, encounter, message_id, dx.code, dx.coding_system,
                             dx.display, dx.diagnosed_at, dx.diagnosis_type)
        session.flush()
        changed.append(patient.id)
    return changed


@dataclass(frozen=True, slots=True)
class Timeline:
    """A patient's stored record, newest first."""

    patient: Patient
    identifiers: list[PatientIdentifier]
    encounters: list[Encounter]
    observations: list[ObservationRecord]
    diagnoses: list[DiagnosisRecord]


def timeline(session: Session, patient: Patient, include_superseded: bool = False) -> Timeline:
    obs_query = select(ObservationRecord).where(ObservationRecord.patient_id == patient.id)
    if not include_superseded:
        obs_query = obs_query.where(ObservationRecord.is_current.is_(True))
    return Timeline(
        patient=patient,
        identifiers=list(session.scalars(select(PatientIdentifier).where(
            PatientIdentifier.patient_id == patient.id).order_by(PatientIdentifier.id))),
        encounters=list(session.scalars(select(Encounter).where(
            Encounter.patient_id == patient.id).order_by(Encounter.id.desc()))),
        observations=list(session.scalars(obs_query.order_by(
            ObservationRecord.observed_at.desc(), ObservationRecord.id.desc()))),
        diagnoses=list(session.scalars(select(DiagnosisRecord).where(
            DiagnosisRecord.patient_id == patient.id).order_by(DiagnosisRecord.id.desc()))),
    )
