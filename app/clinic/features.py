"""From the patient store to model inputs, cached per patient and updated incrementally.

Code mapping (LOINC, ICD-10 and SNOMED CT → the model vocabulary), unit normalization to
the card's units, BMI from body weight and height where a site sends no BMI, implausible
values dropped (a unit or entry error must not become a risk), and the
facts the alert rules need (diabetes on record, the latest glycaemic results, when each
screening test was last resulted). `FeatureCache` keeps each patient's canonical history
as arrays and, when a message arrives, reads only the rows added since, so opening a
patient does not recompute ten years of history.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, bindparam, select

from app.store.models import DiagnosisRecord, Encounter, ObservationRecord, Patient
from engines.card import ModelCard
from engines.inputs import History, ModelInput, encode, normalize

# LOINC → (vocabulary name). Units are converted by `to_card_units`.
LOINC: dict[str, str] = {
    "4548-4": "hba1c", "17856-6": "hba1c", "4549-2": "hba1c", "59261-8": "hba1c",
    "1558-6": "fpg", "76629-5": "fpg", "14771-0": "fpg",
    "2345-7": "glucose", "2339-0": "glucose", "41653-7": "glucose",
    "39156-5": "bmi", "8480-6": "sbp", "8462-4": "dbp",
    "2093-3": "chol", "2085-9": "hdl", "13457-7": "ldl", "18262-6": "ldl", "2089-1": "ldl",
    "2571-8": "tg",
}
# Body measurements a site may send instead of a BMI: LOINC → "weight" (kg) / "height" (cm).
BODY: dict[str, str] = {"29463-7": "weight", "3141-9": "weight", "8302-2": "height",
                        "8306-3": "height", "3137-7": "height"}
_WEIGHT_KG = {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237, "lbs": 0.45359237}
_HEIGHT_CM = {"cm": 1.0, "m": 100.0, "[in_i]": 2.54, "in": 2.54, "[in_us]": 2.54, "mm": 0.1}
# SNOMED CT concepts → vocabulary names (diagnoses in DG1 or problem lists in PRB).
SNOMED_CT: dict[str, str] = {
    "38341003": "dx_htn", "59621000": "dx_htn", "1201005": "dx_htn",
    "714628002": "dx_prediabetes", "15777000": "dx_prediabetes", "9414007": "dx_prediabetes",
    "11687002": "dx_gdm", "472971004": "dx_gdm", "69878008": "dx_pcos", "237055002": "dx_pcos",
    "160303001": "dx_famhx", "430678008": "dx_famhx", "414916001": "dx_obesity",
    "238136002": "dx_obesity", "58214004": "dx_smi", "13746004": "dx_smi",
    "68890003": "dx_smi",
}
DIABETES_SNOMED = ("44054006", "73211009", "46635009", "190372001", "199230006")
# ICD-10 prefixes → vocabulary names (longest prefix wins).
ICD10: dict[str, str] = {
    "I10": "dx_htn", "I11": "dx_htn", "I12": "dx_htn", "I13": "dx_htn", "I15": "dx_htn",
    "R73.0": "dx_prediabetes", "R73.9": "dx_prediabetes", "O24.4": "dx_gdm",
    "Z86.32": "dx_gdm", "E28.2": "dx_pcos", "Z83.3": "dx_famhx", "E66": "dx_obesity",
    "F20": "dx_smi", "F25": "dx_smi", "F31": "dx_smi",
}
DIABETES_ICD10 = ("E08", "E09", "E10", "E11", "E13", "E14")
# CDC race codes (PID-10) → QDiabetes ethnicity groups.
RACE: dict[str, str] = {
    "2106-3": "white", "2029-7": "south_asian", "2030-5": "south_asian", "2031-3": "south_asian",
    "2044-4": "south_asian", "2045-1": "south_asian", "2054-5": "black", "2058-6": "black",
    "2060-2": "black", "2076-8": "other", "2028-9": "east_asian", "2034-7": "east_asian",
    "2039-6": "east_asian", "2040-4": "east_asian", "2131-1": "other",
}
_GLUCOSE_MMOL = 18.016
_UNIT_ALIASES = {"mg/dl": "mg/dL", "mmol/l": "mmol/L", "%": "%", "mmol/mol": "mmol/mol",
                 "kg/m2": "kg/m2", "kg/m^2": "kg/m2", "kg/m²": "kg/m2", "mm[hg]": "mm[Hg]",
                 "mmhg": "mm[Hg]", "mm hg": "mm[Hg]"}


def to_card_units(name: str, value: float, unit: str, loinc: str = "") -> float | None:
    """A value in the unit it was sent in → the card's canonical unit; None if unknown."""
    unit = _UNIT_ALIASES.get(unit.strip().lower(), unit.strip())
    if name == "hba1c":
        if unit == "mmol/mol" or loinc == "59261-8":
            return 0.09148 * value + 2.152  # IFCC → NGSP master equation
        return value if unit in ("%", "") else None
    if name in ("fpg", "glucose"):
        return value if unit == "mg/dL" else value * _GLUCOSE_MMOL if unit == "mmol/L" else None
    if name in ("chol", "hdl", "ldl"):
        return value if unit == "mg/dL" else value * 38.67 if unit == "mmol/L" else None
    if name == "tg":
        return value if unit == "mg/dL" else value * 88.57 if unit == "mmol/L" else None
    if name == "bmi":
        return value if unit in ("kg/m2", "") else None
    if name in ("sbp", "dbp"):
        return value if unit in ("mm[Hg]", "") else None
    return None


def body_value(kind: str, value: float, unit: str) -> float | None:
    """A weight in kg or a height in cm, from the unit it was sent in; None if unknown or
    implausible for an adult."""
    factor = (_WEIGHT_KG if kind == "weight" else _HEIGHT_CM).get(unit.strip().lower())
    if factor is None:
        return None
    converted = value * factor
    low, high = (20.0, 400.0) if kind == "weight" else (100.0, 230.0)
    return converted if low <= converted <= high else None


def is_diabetes(code: str, system: str = "") -> bool:
    code = code.strip().upper()
    if system == "SNOMED-CT" or code in DIABETES_SNOMED:
        return code in DIABETES_SNOMED
    return code.startswith(DIABETES_ICD10)


def dx_name(code: str, system: str = "") -> str | None:
    """A diagnosis code → its vocabulary name: SNOMED CT by concept, ICD-10 by prefix."""
    code = code.strip().upper()
    if system == "SNOMED-CT" or (code.isdigit() and code in SNOMED_CT):
        return SNOMED_CT.get(code)
    best = ""
    for prefix in ICD10:
        if code.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return ICD10.get(best) if best else None


@dataclass
class PatientFeatures:
    """One patient's canonical history and the facts the alert rules read."""

    patient_id: int
    sex: str = ""
    birth_date: date | None = None
    ethnicity: str = ""
    # Canonical events by key (a result's result_key, "dx:<id>", "visit:<id>"):
    # (vocabulary name, epoch seconds, card-unit value or None). Keyed, so a correction
    # replaces its result in O(1).
    events: dict[str, tuple[str, float, float | None]] = field(default_factory=dict)
    visits: dict[str, tuple[str, float, float | None]] = field(default_factory=dict)
    # Body weights (kg) and heights (cm) by result key, for a BMI where none is sent.
    body: dict[str, tuple[str, float, float]] = field(default_factory=dict)
    diabetes_on_record: bool = False
    last_result_at: dict[str, datetime] = field(default_factory=dict)  # by LOINC
    dropped_values: int = 0  # implausible or in units not understood
    last_obs_id: int = 0
    last_dx_id: int = 0
    # Derived views, rebuilt on first use after a change (`changed`).
    _history: History | None = None
    _values: dict[str, list[tuple[datetime, float]]] | None = None

    def changed(self) -> None:
        """Events were added, replaced or removed: drop the derived views."""
        self._history = None
        self._values = None

    def derived(self) -> list[tuple[str, float, float | None]]:
        """BMI from each body weight and the height measured nearest in time, where no
        BMI was sent within a day of that weight."""
        heights = sorted((t, v) for kind, t, v in self.body.values() if kind == "height")
        if not heights:
            return []
        sent = [t for n, t, _ in self.events.values() if n == "bmi"]
        out: list[tuple[str, float, float | None]] = []
        for kind, t, kg in self.body.values():
            if kind != "weight" or any(abs(t - s) < 86400 for s in sent):
                continue
            _, cm = min(heights, key=lambda h: abs(h[0] - t))
            out.append(("bmi", t, round(kg / (cm / 100) ** 2, 1)))
        return out

    def history(self, card: ModelCard) -> History:
        """The arrays the encoder reads (rebuilt only after a change)."""
        if self._history is None:
            index = {name: i for i, name in enumerate(card.vocabulary)}
            rows = [(index[n], t, normalize(card, n, v))
                    for n, t, v in chain(self.events.values(), self.visits.values(),
                                         self.derived())
                    if n in index]
            rows = [r for r in rows if r[2] is not None]
            rows.sort(key=lambda r: r[1])
            self._history = History(
                np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
                np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows)),
                np.fromiter((r[2] for r in rows), dtype=np.float32, count=len(rows)),
                self.sex, self.birth_date, self.ethnicity)
        return self._history

    def values_of(self, name: str) -> list[tuple[datetime, float]]:
        """Every stored value of one input, newest first (corrections already applied)."""
        return list(self._by_name().get(name, ()))

    def has(self, name: str) -> bool:
        """Whether any event of this input is on record (a diagnosis, a result)."""
        return name in self._by_name()

    def _by_name(self) -> dict[str, list[tuple[datetime, float]]]:
        """Every input on record → its values, newest first (built once per change)."""
        if self._values is None:
            by_name: dict[str, list[tuple[float, float]]] = {}
            for n, t, v in chain(self.events.values(), self.derived()):
                found = by_name.setdefault(n, [])
                if v is not None:
                    found.append((t, v))
            self._values = {n: [(datetime.fromtimestamp(t, UTC), v)
                                for t, v in sorted(found, reverse=True)]
                            for n, found in by_name.items()}
        return self._values

    def inputs(self, card: ModelCard, now: datetime) -> ModelInput:
        return encode(card, self.history(card), now)


# The cache's reads, built once: opening a patient runs them with new parameters only.
# Columns, not ORM objects, so a first read of ten years of results stays a few ms; the
# "after" reads use the (patient_id, id) indexes.
_PATIENT = select(Patient.sex, Patient.birth_date, Patient.race).where(
    Patient.id == bindparam("patient"))
_RESULTS_AFTER = select(
    ObservationRecord.id, ObservationRecord.result_key, ObservationRecord.is_current,
    ObservationRecord.loinc, ObservationRecord.observed_at, ObservationRecord.value_num,
    ObservationRecord.units,
).where(ObservationRecord.patient_id == bindparam("patient"),
        ObservationRecord.id > bindparam("after")).order_by(ObservationRecord.id)
_DIAGNOSES_AFTER = select(
    DiagnosisRecord.id, DiagnosisRecord.code, DiagnosisRecord.coding_system,
    DiagnosisRecord.diagnosed_at, DiagnosisRecord.recorded_at,
).where(DiagnosisRecord.patient_id == bindparam("patient"),
        DiagnosisRecord.id > bindparam("after")).order_by(DiagnosisRecord.id)
_VISITS = select(Encounter.id, Encounter.admitted_at, Encounter.status).where(
    Encounter.patient_id == bindparam("patient"))


def _to_epoch(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


class FeatureCache:
    """Per-patient features, refreshed incrementally from the store. Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._entries: dict[int, PatientFeatures] = {}
        self._lock = threading.Lock()

    def invalidate(self, patient_id: int | None = None) -> None:
        """Forget one patient (a merge moved history) or everyone."""
        with self._lock:
            if patient_id is None:
                self._entries.clear()
            else:
                self._entries.pop(patient_id, None)

    def get(self, patient_id: int) -> PatientFeatures:
        """The patient's features, with every row stored since the last call applied."""
        with self._lock:
            entry = self._entries.get(patient_id)
            if entry is None:
                entry = PatientFeatures(patient_id)
                self._entries[patient_id] = entry
            with self._engine.connect() as connection:  # one read transaction: one snapshot
                self._refresh(connection, entry)
            return entry

    def _refresh(self, connection: Connection, entry: PatientFeatures) -> None:
        params = {"patient": entry.patient_id}
        patient = connection.execute(_PATIENT, params).first()
        if patient is None:
            raise KeyError(f"no patient {entry.patient_id}")
        entry.sex, entry.birth_date, race = patient
        entry.ethnicity = RACE.get(race.split("^")[0], "other" if race else "")
        changed = False
        rows = connection.execute(_RESULTS_AFTER, {**params, "after": entry.last_obs_id}).all()
        for row in rows:
            changed |= self._apply_observation(entry, row)
        if rows:
            entry.last_obs_id = max(entry.last_obs_id, rows[-1][0])  # ordered by id
        dxs = connection.execute(_DIAGNOSES_AFTER, {**params, "after": entry.last_dx_id}).all()
        for dx_id, code, system, diagnosed_at, recorded_at in dxs:
            entry.last_dx_id = max(entry.last_dx_id, dx_id)
            if is_diabetes(code, system or ""):
                entry.diabetes_on_record = True
            name = dx_name(code, system or "")
            when = _to_epoch(diagnosed_at or recorded_at)
            if name and when is not None:
                entry.events[f"dx:{dx_id}"] = (name, when, None)
                changed = True
        # Visits: few rows, re-read whole (a cancelled admission is no visit).
        visit_events: dict[str, tuple[str, float, float | None]] = {
            f"visit:{eid}": ("visit", when.timestamp(), None)
            for eid, when, status in connection.execute(_VISITS, params)
            if when and status != "cancelled"}
        if entry.visits != visit_events:
            entry.visits = visit_events
            changed = True
        if changed:
            entry.changed()

    @staticmethod
    def _apply_observation(entry: PatientFeatures, row: Sequence[Any]) -> bool:
        _, result_key, is_current, loinc, observed_at, value_num, units = row
        # Any newer row for the same result (correction, deletion) replaces the cached one.
        changed = entry.events.pop(result_key, None) is not None
        changed |= entry.body.pop(result_key, None) is not None
        if not is_current:
            return changed
        if loinc and observed_at is not None and value_num is not None:
            last = entry.last_result_at.get(loinc)
            if last is None or observed_at > last:
                entry.last_result_at[loinc] = observed_at
        kind = BODY.get(loinc)
        if kind is not None and value_num is not None and observed_at is not None:
            measured = body_value(kind, value_num, units or "")
            if measured is None:
                entry.dropped_values += 1
                return changed
            entry.body[result_key] = (kind, observed_at.timestamp(), measured)
            return True
        name = LOINC.get(loinc)
        if name is None or value_num is None or observed_at is None:
            return changed
        value = to_card_units(name, value_num, units, loinc)
        if value is None or not math.isfinite(value):
            entry.dropped_values += 1
            return changed
        entry.events[result_key] = (name, observed_at.timestamp(), value)
        return True


def utc_now() -> datetime:
    return datetime.now(UTC)
