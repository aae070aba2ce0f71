"""Applying parsed ADT/ORU content to the patient store, and reading a patient back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from app import logs
from app.store.models import (
    DiagnosisRecord,
    Encounter,
    EncounterStatus,
    ObservationRecord,
    Patient,
    PatientIdentifier,
    table_of,
    utcnow,
)
from app.store.waveforms import store_waveforms
from integrations.hl7.events import (
    AdtAction,
    Diagnosis,
    Identifier,
    Observation,
    ParsedMessage,
    PatientInfo,
)

_PERSON_ONLY = {"A28", "A31"}  # person administration: PV1 there is not a visit
_P = table_of(Patient)
_PI = table_of(PatientIdentifier)
_E = table_of(Encounter)
_O = table_of(ObservationRecord)
_D = table_of(DiagnosisRecord)


def find_by_identifier(session: Session, value: str, authority: str | None) -> list[Patient]:
    """Patients with this identifier; any authority when `authority` is None."""
    query = select(_PI.c.patient_id, _P.c.merged_into_id).join(
        _P, _P.c.id == _PI.c.patient_id).where(_PI.c.value == value)
    if authority is not None:
        query = query.where(_PI.c.authority == authority)
    conn = session.connection()
    survivors = dict.fromkeys(_survivor_id(conn, patient_id, merged)
                              for patient_id, merged in session.execute(query))
    return [p for p in (session.get(Patient, i) for i in survivors) if p is not None]


# Writing: SQLAlchemy Core on the processor's connection. The ORM's unit of work cost
# several times the SQL itself here, and this runs for every message received.
_DEMOGRAPHICS = ("family_name", "given_name", "birth_date", "sex", "race", "ethnicity")
_VISIT = ("patient_class", "location", "prior_location", "attending", "referring",
          "admitting", "admitted_at")


def _survivor_id(conn: Connection, patient_id: int, merged_into: int | None) -> int:
    """Where a chain of ADT^A40 merges starting at `patient_id` ends."""
    seen = {patient_id}
    while merged_into is not None and merged_into not in seen:
        seen.add(merged_into)
        patient_id = merged_into
        merged_into = conn.scalar(select(_P.c.merged_into_id).where(_P.c.id == patient_id))
    return patient_id


def _owners(conn: Connection, identifiers: Sequence[Identifier]) -> dict[tuple[str, str], int]:
    """(value, authority) → the surviving patient holding it, for those that are known."""
    if not identifiers:
        return {}
    pairs = or_(*(and_(_PI.c.value == i.value, _PI.c.authority == i.authority)
                  for i in identifiers))
    rows = conn.execute(select(_PI.c.value, _PI.c.authority, _PI.c.patient_id,
                               _P.c.merged_into_id)
                        .join(_P, _P.c.id == _PI.c.patient_id).where(pairs))
    return {(value, authority): _survivor_id(conn, patient_id, merged)
            for value, authority, patient_id, merged in rows}


def _first_owner(identifiers: Sequence[Identifier],
                 owners: dict[tuple[str, str], int]) -> int | None:
    """The sender lists the identifier that wins first (PID-3's first repetition)."""
    for ident in identifiers:
        owner = owners.get((ident.value, ident.authority))
        if owner is not None:
            return owner
    return None


def _attach_identifiers(conn: Connection, patient_id: int, identifiers: Sequence[Identifier],
                        owners: dict[tuple[str, str], int]) -> None:
    new = []
    for ident in dict.fromkeys(identifiers):
        owner = owners.get((ident.value, ident.authority))
        if owner is None:
            new.append({"patient_id": patient_id, "value": ident.value,
                        "authority": ident.authority, "type_code": ident.type_code})
            owners[(ident.value, ident.authority)] = patient_id
        elif owner != patient_id:
            logs.store.warning("identifier %s already belongs to another patient; "
                               "not moved (merge with ADT^A40 if they are the same person)",
                               logs.pseudonym(ident.value, ident.authority))
    if new:
        conn.execute(insert(_PI), new)


def _upsert_patient(conn: Connection, info: PatientInfo) -> int:
    """Find the patient by any identifier, or create them; update what the message says."""
    owners = _owners(conn, info.identifiers)
    patient_id = _first_owner(info.identifiers, owners)
    values: dict[str, Any] = {a: getattr(info, a) for a in _DEMOGRAPHICS if getattr(info, a)}
    if info.deceased:
        values["deceased"] = True
    values["updated_at"] = utcnow()
    if patient_id is None:
        patient_id = conn.execute(insert(_P).values(**values).returning(_P.c.id)).scalar_one()
    else:
        conn.execute(update(_P).where(_P.c.id == patient_id).values(**values))
    _attach_identifiers(conn, patient_id, info.identifiers, owners)
    return patient_id


def _apply_visit(conn: Connection, patient_id: int, parsed: ParsedMessage) -> int | None:
    """The encounter this message is about, created or updated; None if there is none."""
    visit, action = parsed.visit, parsed.adt_action
    if visit is None or parsed.trigger in _PERSON_ONLY:
        return None
    if action is None and not visit.visit_number:
        return None  # an ORU: link results to a numbered visit, never invent one
    query = select(_E.c.id, _E.c.location, _E.c.status).where(_E.c.patient_id == patient_id)
    if visit.visit_number:
        query = query.where(_E.c.visit_number == visit.visit_number)
    else:
        query = query.where(_E.c.status == EncounterStatus.ACTIVE.value)
    current = conn.execute(query.order_by(_E.c.id.desc()).limit(1)).first()
    values: dict[str, Any] = {a: getattr(visit, a) for a in _VISIT if getattr(visit, a)}
    values.update(last_event=parsed.trigger, updated_at=utcnow())
    status = current.status if current is not None else EncounterStatus.ACTIVE.value
    if action is AdtAction.TRANSFER:
        values["prior_location"] = visit.prior_location or (
            current.location if current is not None else "")
        status = EncounterStatus.ACTIVE.value
    elif action is AdtAction.DISCHARGE:
        status = EncounterStatus.DISCHARGED.value
        values["discharged_at"] = visit.discharged_at or parsed.event_time or utcnow()
    elif action is AdtAction.CANCEL_ADMIT:
        status = EncounterStatus.CANCELLED.value
    elif action is AdtAction.CANCEL_DISCHARGE:
        status = EncounterStatus.ACTIVE.value
        values["discharged_at"] = None
    elif parsed.trigger in ("A01", "A04", "A05") and status != EncounterStatus.DISCHARGED.value:
        status = EncounterStatus.ACTIVE.value
    values["status"] = status
    if current is None:
        return conn.execute(insert(_E).values(
            patient_id=patient_id, visit_number=visit.visit_number, **values
        ).returning(_E.c.id)).scalar_one()
    conn.execute(update(_E).where(_E.c.id == current.id).values(**values))
    return current.id


def _merge(conn: Connection, survivor_id: int, merged_ids: Sequence[Identifier]) -> None:
    """ADT^A40: the merged patient's history, visits and identifiers move to the survivor."""
    owners = _owners(conn, merged_ids)
    merged_id = _first_owner(merged_ids, owners)
    if merged_id is None or merged_id == survivor_id:
        # Not known here yet: remember the old identifiers, so later messages find the survivor.
        _attach_identifiers(conn, survivor_id, merged_ids, owners)
        return
    for table in (_E, _O, _D, _PI):
        conn.execute(update(table).where(table.c.patient_id == merged_id)
                     .values(patient_id=survivor_id))
    conn.execute(update(_P).where(_P.c.id == merged_id).values(
        merged_into_id=survivor_id, updated_at=utcnow()))
    logs.store.info("merged patient %d into %d", merged_id, survivor_id)


def _result_key(obs: Observation) -> str:
    anchor = obs.order_key or (obs.observed_at.isoformat() if obs.observed_at else "")
    return f"{anchor}|{obs.coding_system}|{obs.code}|{obs.sub_id}"[:600]


def _store_observations(conn: Connection, patient_id: int, encounter_id: int | None,
                        message_id: int, observations: Sequence[Observation]) -> None:
    """Insert a message's results; each supersedes the current result with the same key."""
    if not observations:
        return
    keys = [_result_key(obs) for obs in observations]
    earlier: dict[str, list[int]] = {}
    for old_id, key in conn.execute(select(_O.c.id, _O.c.result_key).where(
            _O.c.patient_id == patient_id, _O.c.result_key.in_(set(keys)),
            _O.c.is_current.is_(True))):
        earlier.setdefault(key, []).append(old_id)
    now = utcnow()
    rows = [{
        "patient_id": patient_id, "encounter_id": encounter_id, "message_id": message_id,
        "result_key": key, "set_id": obs.set_id[:16], "code": obs.code[:128],
        "coding_system": obs.coding_system[:64], "loinc": obs.loinc[:16],
        "display": obs.display[:400], "sub_id": obs.sub_id[:32],
        "value_type": obs.value_type[:8], "value_text": obs.value_text,
        "value_num": obs.value_num, "comparator": obs.comparator[:4], "units": obs.units[:64],
        "reference_range": obs.reference_range[:128], "abnormal_flag": obs.abnormal_flag[:16],
        "status": obs.status[:4], "observed_at": obs.observed_at, "recorded_at": now,
        # D: the result was deleted; keep the record of it, but it is no longer a result.
        "is_current": obs.status != "D"} for key, obs in zip(keys, observations, strict=True)]
    conn.execute(insert(_O), rows)  # executemany: no RETURNING, ids only where needed
    repeated = {key for key in keys if key in earlier or keys.count(key) > 1}
    if not repeated:
        return
    superseded = []
    for new_id, key in conn.execute(select(_O.c.id, _O.c.result_key).where(
            _O.c.message_id == message_id, _O.c.patient_id == patient_id,
            _O.c.result_key.in_(repeated)).order_by(_O.c.id)):
        # A correction (C), a final after a preliminary, a deletion: the newer one wins,
        # also within one message.
        superseded += [{"old_id": old, "new_id": new_id} for old in earlier.get(key, [])]
        earlier[key] = [new_id]
    if superseded:
        conn.execute(update(_O).where(_O.c.id == bindparam("old_id")).values(
            is_current=False, superseded_by_id=bindparam("new_id")), superseded)


def _store_diagnoses(conn: Connection, patient_id: int, encounter_id: int | None,
                     message_id: int, diagnoses: Sequence[Diagnosis]) -> None:
    """ADT updates repeat the same DG1s: keep one of each (code, system, time)."""
    if not diagnoses:
        return
    known = {(row.code, row.coding_system, row.diagnosed_at) for row in conn.execute(
        select(_D.c.code, _D.c.coding_system, _D.c.diagnosed_at).where(
            _D.c.patient_id == patient_id, _D.c.code.in_({dx.code[:64] for dx in diagnoses})))}
    rows = []
    for dx in diagnoses:
        key = (dx.code[:64], dx.coding_system[:64], dx.diagnosed_at)
        if key in known:
            continue
        known.add(key)
        rows.append({"patient_id": patient_id, "encounter_id": encounter_id,
                     "message_id": message_id, "code": key[0], "coding_system": key[1],
                     "display": dx.display[:400], "diagnosed_at": dx.diagnosed_at,
                     "diagnosis_type": dx.diagnosis_type[:8]})
    if rows:
        conn.execute(insert(_D), rows)


def apply_parsed(conn: Connection, message_id: int,
                 parsed: Sequence[ParsedMessage]) -> list[int]:
    """Apply one message's content; returns the ids of the patients it changed."""
    changed: list[int] = []
    for item in parsed:
        patient_id = _upsert_patient(conn, item.patient)
        if item.adt_action is AdtAction.MERGE:
            _merge(conn, patient_id, item.merged_identifiers)
        encounter_id = _apply_visit(conn, patient_id, item)
        _store_observations(conn, patient_id, encounter_id, message_id, item.observations)
        _store_diagnoses(conn, patient_id, encounter_id, message_id, item.diagnoses)
        store_waveforms(conn, patient_id, encounter_id, message_id, item.waveforms)
        changed.append(patient_id)
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
