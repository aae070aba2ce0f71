"""Applying parsed ADT/ORU content to the patient store, and reading a patient back."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Connection,
    Dialect,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.schema import ColumnDefault

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
    VisitInfo,
)

_PERSON_ONLY = {"A28", "A31"}  # person administration: PV1 there is not a visit
_P = table_of(Patient)
_PI = table_of(PatientIdentifier)
_E = table_of(Encounter)
_O = table_of(ObservationRecord)
_D = table_of(DiagnosisRecord)
_OWNERS = select(_PI.c.value, _PI.c.authority, _PI.c.patient_id, _P.c.merged_into_id).join(
    _P, _P.c.id == _PI.c.patient_id).where(_PI.c.value.in_(bindparam("values", expanding=True)))
_SUPERSEDE = update(_O).where(_O.c.id == bindparam("old_id")).values(
    is_current=False, superseded_by_id=bindparam("new_id"))


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


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """`conn.execute(insert(table), rows)` for rows that all set the same columns, with
    SQLAlchemy's statement and type conversions but not its per-row parameter handling,
    and each distinct value converted once (a result message's 20 rows share their
    times): for a result message, a fifth of processing it. On PostgreSQL the rows go in
    by COPY, one round trip instead of a statement each, unless row-level security applies
    to this role there (COPY FROM does not support it; a department's receiver owns the
    tables, so it does not). Tested equal to the plain insert
    (tests/app/test_apply_many.py)."""
    if not rows:
        return
    sql, columns, convert, defaults = _bulk_insert(table, tuple(rows[0]), conn.dialect)
    copy = conn.dialect.name == "postgresql" and _may_copy(conn, table)
    order = columns or (*rows[0], *defaults)
    read = itemgetter(*order) if len(order) > 1 else (lambda row: (row[order[0]],))
    fixes: list[tuple[int, Callable[[Any], Any], dict[Any, Any]]] = [
        (index, f, {}) for index, key in enumerate(order) if (f := convert.get(key))]
    params: list[Any] = []
    for row in rows:
        values: Any = read(defaults | row if defaults else row)
        if fixes:
            values = list(values)
            for index, f, memo in fixes:
                value = values[index]
                values[index] = memo[value] if value in memo else \
                    memo.setdefault(value, f(value))
        params.append(tuple(values) if columns or copy else
                      dict(zip(order, values, strict=True)))
    if copy:
        quote = conn.dialect.identifier_preparer
        names = ", ".join(quote.format_column(table.c[k]) for k in order)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor, cursor.copy(f"COPY {quote.format_table(table)} ({names}) FROM STDIN") \
                as stream:
            for values in params:
                stream.write_row(values)
        return
    conn.exec_driver_sql(sql, params)


def _may_copy(conn: Connection, table: Table) -> bool:
    """Whether COPY FROM may fill `table` here: no row-level security for this role (asked
    once per database connection)."""
    known = conn.connection.info.setdefault("clarion_copy", {})
    if table.name not in known:
        known[table.name] = not conn.scalar(
            select(func.row_security_active(table.name)))
    return bool(known[table.name])


@functools.lru_cache(maxsize=64)
def _bulk_insert(table: Table, keys: tuple[str, ...], dialect: Dialect) -> tuple[
        str, tuple[str, ...] | None, dict[str, Callable[[Any], Any]], dict[str, Any]]:
    """The INSERT as the driver takes it, the order of its positional parameters (None
    where they are named), the conversions of the columns whose type has one, and the
    plain defaults of the columns the rows leave out (SQLAlchemy adds those columns)."""
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys),
                                     for_executemany=True)  # no RETURNING
    columns = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup \
        else None
    defaults: dict[str, Any] = {}
    for column in table.columns:
        if column.key in keys or column.key not in compiled.binds:
            continue
        default = column.default
        if not isinstance(default, ColumnDefault) or not default.is_scalar:
            raise ValueError(f"insert_rows into {table.name}: give {column.key}, its "
                             "default is computed per row")
        defaults[column.key] = default.arg
    convert: dict[str, Callable[[Any], Any]] = {
        k: f for k in (*keys, *defaults)
        if (f := table.c[k].type.dialect_impl(dialect).bind_processor(dialect)) is not None}
    return str(compiled), columns, convert, defaults


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
    # By value alone (one statement, compiled once, for any number of identifiers; the
    # index leads with the value), the authority matched here.
    wanted = {(i.value, i.authority) for i in identifiers}
    rows = conn.execute(_OWNERS, {"values": sorted({value for value, _ in wanted})})
    return {(value, authority): _survivor_id(conn, patient_id, merged)
            for value, authority, patient_id, merged in rows if (value, authority) in wanted}


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
    new = _new_identifiers(patient_id, identifiers, owners)
    if new:
        conn.execute(insert(_PI), new)


def _new_identifiers(patient_id: int, identifiers: Sequence[Identifier],
                     owners: dict[tuple[str, str], int]) -> list[dict[str, Any]]:
    """The rows that give `patient_id` the identifiers nobody holds yet (`owners` learns
    them); one held by another patient stays there."""
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
    return new


def _demographics(info: PatientInfo) -> dict[str, Any]:
    """What the message says of the person: only what it says (an empty field keeps
    what is known)."""
    values: dict[str, Any] = {a: getattr(info, a) for a in _DEMOGRAPHICS if getattr(info, a)}
    if info.deceased:
        values["deceased"] = True
    values["updated_at"] = utcnow()
    return values


def _upsert_patient(conn: Connection, info: PatientInfo) -> int:
    """Find the patient by any identifier, or create them; update what the message says."""
    owners = _owners(conn, info.identifiers)
    patient_id = _first_owner(info.identifiers, owners)
    values = _demographics(info)
    if patient_id is None:
        patient_id = conn.execute(insert(_P).values(**values).returning(_P.c.id)).scalar_one()
    else:
        conn.execute(update(_P).where(_P.c.id == patient_id).values(**values))
    _attach_identifiers(conn, patient_id, info.identifiers, owners)
    return patient_id


def _apply_visit(conn: Connection, patient_id: int, parsed: ParsedMessage) -> int | None:
    """The encounter this message is about, created or updated; None if there is none."""
    return _apply_visits(conn, [parsed], [patient_id])[0]  # a run of one


def _visit_of(parsed: ParsedMessage) -> VisitInfo | None:
    """The visit this message is about, if it is about one."""
    visit, action = parsed.visit, parsed.adt_action
    if visit is None or parsed.trigger in _PERSON_ONLY:
        return None
    if action is None and not visit.visit_number:
        return None  # an ORU: link results to a numbered visit, never invent one
    return visit


def _visit_change(parsed: ParsedMessage, visit: VisitInfo, current: Any) -> dict[str, Any]:
    """The encounter's new values, given its `current` row (id, location, status) or
    None where it is new."""
    action = parsed.adt_action
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
    return values


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


def _observation_rows(patient_id: int, encounter_id: int | None, message_id: int,
                      observations: Sequence[Observation], keys: Sequence[str]
                      ) -> list[dict[str, Any]]:
    now = utcnow()
    return [{
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


def _repeated(keys: Sequence[str], earlier: dict[str, list[int]]) -> set[str]:
    """The keys whose new rows supersede something: a current result, or one before them
    in the same message."""
    return {key for key in keys if key in earlier or keys.count(key) > 1}


def _superseded(earlier: dict[str, list[int]], new_rows: Any) -> list[dict[str, int]]:
    """(old, new) pairs, given the new rows of the repeated keys in insertion order. A
    correction (C), a final after a preliminary, a deletion: the newer one wins, also
    within one message."""
    superseded = []
    for new_id, key in new_rows:
        superseded += [{"old_id": old, "new_id": new_id} for old in earlier.get(key, [])]
        earlier[key] = [new_id]
    return superseded


def _diagnosis_rows(patient_id: int, encounter_id: int | None, message_id: int,
                    diagnoses: Sequence[Diagnosis], known: set[tuple[Any, ...]]
                    ) -> list[dict[str, Any]]:
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
    return rows


def apply_parsed(conn: Connection, message_id: int,
                 parsed: Sequence[ParsedMessage]) -> list[int]:
    """Apply one message's content; returns the ids of the patients it changed."""
    changed: list[int] = []
    for item in parsed:
        patient_id = _upsert_patient(conn, item.patient)
        if item.adt_action is AdtAction.MERGE:
            _merge(conn, patient_id, item.merged_identifiers)
        encounter_id = _apply_visit(conn, patient_id, item)
        # What a run does, for a run of one.
        _store_run_observations(conn, [(message_id, item)], [patient_id], [encounter_id])
        _store_run_diagnoses(conn, [(message_id, item)], [patient_id], [encounter_id])
        store_waveforms(conn, patient_id, encounter_id, message_id, item.waveforms)
        changed.append(patient_id)
    return changed


RUN = 64  # messages applied together, at most


def apply_many(conn: Connection, items: Sequence[tuple[int, Sequence[ParsedMessage]]]
               ) -> list[list[int]]:
    """Apply several messages' content, in order: what `apply_parsed` on each in turn
    would do (tests/app/test_apply_many.py), with a handful of statements for the lot
    instead of a dozen per message. Messages go in runs in which no patient appears
    twice, so none depends on another's result; a merge, an ECG, or a message naming
    several patients goes alone, through `apply_parsed`. Returns, per message, the ids
    of the patients it changed."""
    changed: list[list[int]] = []
    while len(changed) < len(items):
        message_id, parsed = items[len(changed)]
        if not _runs_together(parsed):
            changed.append(apply_parsed(conn, message_id, parsed))
            continue
        run = []
        for message_id, parsed in items[len(changed):len(changed) + RUN]:
            if not _runs_together(parsed):
                break
            run.append((message_id, parsed[0]))
        changed += [[patient_id] for patient_id in _apply_run(conn, run)]
    return changed


def _runs_together(parsed: Sequence[ParsedMessage]) -> bool:
    return len(parsed) == 1 and parsed[0].adt_action is not AdtAction.MERGE and \
        not parsed[0].waveforms


def _apply_run(conn: Connection, run: list[tuple[int, ParsedMessage]]) -> list[int]:
    """The longest prefix of `run` in which no patient appears twice, applied; returns
    its patients' ids (at least one message is always taken)."""
    owners = _owners(conn, [i for _, item in run for i in item.patient.identifiers])
    held: set[tuple[str, str]] = set()  # the identifiers of the messages taken
    found: list[int | None] = []
    for _, item in run:
        pairs = {(i.value, i.authority) for i in item.patient.identifiers}
        patient_id = _first_owner(item.patient.identifiers, owners)
        if found and (pairs & held or (patient_id is not None and patient_id in found)):
            break  # this patient's earlier message must be applied first: the next run
        held |= pairs
        found.append(patient_id)
    taken = run[:len(found)]
    patient_ids = _upsert_patients(conn, taken, found, owners)
    encounter_ids = _apply_visits(conn, [item for _, item in taken], patient_ids)
    _store_run_observations(conn, taken, patient_ids, encounter_ids)
    _store_run_diagnoses(conn, taken, patient_ids, encounter_ids)
    return patient_ids


def _grouped(rows: list[tuple[int, dict[str, Any]]]
             ) -> dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]]:
    """Rows by the columns they set: one executemany each."""
    groups: dict[tuple[str, ...], list[tuple[int, dict[str, Any]]]] = {}
    for index, values in rows:
        groups.setdefault(tuple(values), []).append((index, values))
    return groups


def _insert_returning_ids(conn: Connection, table: Any,
                          rows: list[tuple[int, dict[str, Any]]], ids: list[Any]) -> None:
    """Insert `rows`, setting ids[index] to each new row's id."""
    for group in _grouped(rows).values():
        new_ids = conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                               [values for _, values in group]).scalars().all()
        for (index, _), new_id in zip(group, new_ids, strict=True):
            ids[index] = new_id


def _update_by_id(conn: Connection, table: Any, rows: list[tuple[int, dict[str, Any]]]) -> None:
    """rows: (id, the values to set)."""
    for group in _grouped(rows).values():
        conn.execute(update(table).where(table.c.id == bindparam("row_id")),
                     [{"row_id": row_id, **values} for row_id, values in group])


def _upsert_patients(conn: Connection, taken: list[tuple[int, ParsedMessage]],
                     found: list[int | None], owners: dict[tuple[str, str], int]) -> list[int]:
    ids: list[Any] = list(found)
    new, known = [], []
    for index, ((_, item), patient_id) in enumerate(zip(taken, found, strict=True)):
        values = _demographics(item.patient)
        if patient_id is None:
            new.append((index, values))
        else:
            known.append((patient_id, values))
    _insert_returning_ids(conn, _P, new, ids)
    _update_by_id(conn, _P, known)
    identifiers = []
    for (_, item), patient_id in zip(taken, ids, strict=True):
        identifiers += _new_identifiers(patient_id, item.patient.identifiers, owners)
    if identifiers:
        conn.execute(insert(_PI), identifiers)
    return ids


def _apply_visits(conn: Connection, items: list[ParsedMessage],
                  patient_ids: list[int]) -> list[int | None]:
    """Each message's encounter, created or updated (None where it is about none)."""
    ids: list[Any] = [None] * len(items)
    visits = [(index, item, visit) for index, item in enumerate(items)
              if (visit := _visit_of(item)) is not None]
    if not visits:
        return ids
    numbers = {visit.visit_number for _, _, visit in visits if visit.visit_number}
    # A visit is found by its number; one sent without a number is the patient's latest
    # active one. (Not every active visit of every patient: a patient with a long record
    # has many, and reading them all made processing slow down as the store grew.)
    unnumbered = {patient_ids[i] for i, _, visit in visits if not visit.visit_number}
    numbered: dict[tuple[int, str], Any] = {}
    active: dict[int, Any] = {}
    columns = (_E.c.id, _E.c.patient_id, _E.c.visit_number, _E.c.location, _E.c.status)
    if numbers:  # two INs on the index's two columns: a lookup per pair, not a scan
        for row in conn.execute(select(*columns).where(
                _E.c.patient_id.in_({patient_ids[i] for i, _, visit in visits
                                     if visit.visit_number}),
                _E.c.visit_number.in_(numbers)).order_by(_E.c.id)):
            numbered[(row.patient_id, row.visit_number)] = row  # the latest wins
    if unnumbered:  # each patient's latest active visit, as in _apply_visit (not all of them)
        latest = select(func.max(_E.c.id)).where(
            _E.c.patient_id.in_(unnumbered),
            _E.c.status == EncounterStatus.ACTIVE.value).group_by(_E.c.patient_id)
        for row in conn.execute(select(*columns).where(_E.c.id.in_(latest))):
            active[row.patient_id] = row
    new, known = [], []
    for index, item, visit in visits:
        patient_id = patient_ids[index]
        current = numbered.get((patient_id, visit.visit_number)) if visit.visit_number \
            else active.get(patient_id)
        values = _visit_change(item, visit, current)
        if current is None:
            new.append((index, {"patient_id": patient_id, "visit_number": visit.visit_number,
                                **values}))
        else:
            ids[index] = current.id
            known.append((current.id, values))
    _insert_returning_ids(conn, _E, new, ids)
    _update_by_id(conn, _E, known)
    return ids


def _store_run_observations(conn: Connection, taken: list[tuple[int, ParsedMessage]],
                            patient_ids: list[int], encounter_ids: list[int | None]) -> None:
    keys = [[_result_key(obs) for obs in item.observations] for _, item in taken]
    if not any(keys):
        return
    earlier: dict[int, dict[str, list[int]]] = {patient_id: {} for patient_id in patient_ids}
    # By result key alone (ix_obs_result_key), the patient matched here: a key names one
    # order's result, so this is a lookup per key, however long the patients' records.
    # (By patient and key, PostgreSQL read every current result of the patients: 100 ms
    # a batch once they had a few thousand, and the receiver fell behind; migration 0014.)
    for old_id, patient_id, key in conn.execute(
            select(_O.c.id, _O.c.patient_id, _O.c.result_key).where(
                _O.c.result_key.in_({key for message in keys for key in message}),
                _O.c.is_current.is_(True)).order_by(_O.c.id)):
        if patient_id in earlier:
            earlier[patient_id].setdefault(key, []).append(old_id)
    rows: list[dict[str, Any]] = []
    repeated = []  # (patient, message, the keys whose new rows supersede)
    for (message_id, item), patient_id, encounter_id, message_keys in zip(
            taken, patient_ids, encounter_ids, keys, strict=True):
        mine = {key: earlier[patient_id][key] for key in message_keys
                if key in earlier[patient_id]}
        earlier[patient_id] = mine
        if again := _repeated(message_keys, mine):
            repeated.append((patient_id, message_id, again))
        rows += _observation_rows(patient_id, encounter_id, message_id, item.observations,
                                  message_keys)
    if not rows:
        return
    insert_rows(conn, _O, rows)
    if not repeated:
        return
    # (message, patient) → (new id, key), in order
    new_rows: dict[tuple[int, int], list[tuple[int, str]]] = {}
    for new_id, message_id, patient_id, key in conn.execute(  # by key, as above
            select(_O.c.id, _O.c.message_id, _O.c.patient_id, _O.c.result_key).where(
                _O.c.result_key.in_({key for *_, again in repeated for key in again}),
                _O.c.message_id.in_({message_id for _, message_id, _ in repeated}))
            .order_by(_O.c.id)):
        new_rows.setdefault((message_id, patient_id), []).append((new_id, key))
    superseded = []
    for patient_id, message_id, again in repeated:
        superseded += _superseded(earlier[patient_id], [
            (new_id, key) for new_id, key in new_rows.get((message_id, patient_id), [])
            if key in again])
    if superseded:
        conn.execute(_SUPERSEDE, superseded)


def _store_run_diagnoses(conn: Connection, taken: list[tuple[int, ParsedMessage]],
                         patient_ids: list[int], encounter_ids: list[int | None]) -> None:
    codes = {dx.code[:64] for _, item in taken for dx in item.diagnoses}
    if not codes:
        return
    known: dict[int, set[tuple[Any, ...]]] = {patient_id: set() for patient_id in patient_ids}
    for row in conn.execute(
            select(_D.c.patient_id, _D.c.code, _D.c.coding_system, _D.c.diagnosed_at).where(
                _D.c.patient_id.in_(set(patient_ids)), _D.c.code.in_(codes))):
        known[row.patient_id].add((row.code, row.coding_system, row.diagnosed_at))
    rows = []
    for (message_id, item), patient_id, encounter_id in zip(taken, patient_ids, encounter_ids,
                                                            strict=True):
        rows += _diagnosis_rows(patient_id, encounter_id, message_id, item.diagnoses,
                                known[patient_id])
    if rows:
        conn.execute(insert(_D), rows)


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
