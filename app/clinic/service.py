"""The open-patient context and the path from a new result to an alert (no Qt).

`ClinicService` is what the desktop app and the headless demo run around the ingest
service: it knows which patients are open on this workstation (ADT routing, EHR launch,
by hand), scores a patient when it is opened and when a new result for it arrives, asks
the policy, logs the decision, and hands alerts to whoever listens (the Qt bridge). It
also closes the loop: a later result carrying a recommended test is logged as
screening_completed, for any patient.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session

from app import logs
from app.adoption.log import AdoptionLog, AlertEventType, outcome_words
from app.clinic.alerts import Alert, AlertPolicy, alert_detail, new_alert_id
from app.clinic.ecg import ecg_scores
from app.clinic.features import LOINC, FeatureCache
from app.clinic.patient_view import PatientSummary, age_on, alert_history, trends_of
from app.clinic.scoring import Score, Scorer, ScoreResult
from app.config import Config
from app.ecg.analysis import EcgAnalysis, EcgAnalyzer
from app.ingest.processor import PatientChanged
from app.store.models import Patient, PatientIdentifier, utcnow
from app.store.patients import find_by_identifier
from app.store.waveforms import patient_waveforms
from engines.card import ModelCard
from engines.select import Selection
from integrations.hl7.routing import Routing

OPENING_TRIGGERS = ("A01", "A04", "A02")
# A screening result in the prediabetes or diabetes range counts as abnormal, for the
# yield of the recommendation (ADA Standards of Care 2025, Section 2): card units.
ABNORMAL_FROM = {"hba1c": 5.7, "fpg": 100.0}
CLOSING_TRIGGERS = ("A03",)


@dataclass(frozen=True, slots=True)
class OpenPatient:
    """A patient open on this workstation: a row of the worklist."""

    patient_id: int
    name: str
    birth_date: str
    mrn: str
    opened_at: datetime
    source: str  # "adt", "launch", "manual"
    location: str = ""  # PV1-3 of the ADT that routed them here
    risk: float | None = None  # the latest score (None: out of scope, or not scored yet)
    tier: str = ""
    tier_words: str = ""
    finding: str = ""  # a rule's finding ("possible undiagnosed diabetes: confirm")
    status: str = ""  # what became of the latest alert: shown, viewed, suppressed (why) ...


class ClinicService:
    """Open patients, scoring on open and on new results, policy, adoption log."""

    def __init__(self, config: Config, engine: Engine, card: ModelCard,
                 selection: Selection, ecg: EcgAnalyzer | None = None) -> None:
        self.config = config
        self.engine = engine
        self.card = card
        self.selection = selection
        self.features = FeatureCache(engine)
        self.scorer = Scorer(card, selection.engine, self.features)
        self.log = AdoptionLog(engine, config.workstation)
        self.policy = AlertPolicy(card, config.alerts, self.log)
        self.model = f"{card.id} {card.version}"
        # The ECG models: each its own policy (tiers, suppression) over the same log.
        self.ecg = ecg
        self.ecg_policies = {m.card.id: AlertPolicy(m.card, config.alerts, self.log)
                             for m in (ecg.models if ecg else [])}
        self._ecg_seen: dict[int, int] = {}  # patient → the last recording analysed
        self._ecg_latest: dict[int, EcgAnalysis] = {}  # patient → its latest analysis
        self._open: dict[int, OpenPatient] = {}
        # (identifier, authority) of every open patient, read by the listener's thread to
        # route messages to the fast lane: replaced whole, never changed in place, so
        # reading it needs no lock.
        self._open_identifiers: frozenset[tuple[str, str]] = frozenset()
        self._identifiers: dict[int, tuple[tuple[str, str], ...]] = {}
        self._last_routing: dict[int, int] = {}  # patient → inbox id of the last ADT applied
        # Two locks. `_lock` is held while a patient is scored or routed (database reads,
        # inference: milliseconds, and back to back during a flood); `_open_lock` only
        # while the open patients (the three attributes above it) are read or changed.
        # The GUI thread takes only the second: a banner acted on must not wait behind
        # the feed (Python's locks are not fair: during the 2,000-patient soak the GUI
        # thread waited 9 ms per banner for `_lock`, and on a busier machine far longer).
        # The order is `_lock`, then `_open_lock`; never the other way.
        self._lock = threading.RLock()
        self._open_lock = threading.Lock()
        self.on_alert: list[Callable[[Alert], None]] = []
        self.on_open_changed: list[Callable[[list[OpenPatient]], None]] = []
        self.last_message_at: datetime | None = None
        self.messages_seen = 0

    # -- the open-patient context ----------------------------------------------------
    @property
    def open_patients(self) -> list[OpenPatient]:
        with self._open_lock:
            return sorted(self._open.values(), key=lambda p: p.opened_at, reverse=True)

    def _describe(self, patient_id: int) -> tuple[str, str, str]:
        name, dob, mrn, _ = self._read_patient(patient_id)
        return name, dob, mrn

    def _read_patient(self, patient_id: int
                      ) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
        """Name, date of birth, MRN (with authority), and every identifier."""
        with Session(self.engine) as session:
            patient = session.get(Patient, patient_id)
            if patient is None:
                raise KeyError(f"no patient {patient_id}")
            idents = sorted(patient.identifiers, key=lambda i: (i.type_code != "MR", i.id))
            mrn = f"{idents[0].value} ({idents[0].authority})" if idents else "?"
            name = f"{patient.family_name.upper()}, {patient.given_name}".strip(", ")
            return (name, patient.birth_date.isoformat() if patient.birth_date else "?", mrn,
                    tuple((i.value, i.authority) for i in idents))

    def wants_now(self, routing: Routing) -> bool:
        """Whether a message belongs in the fast lane: an ADT for this workstation's
        locations or providers, or any message for a patient open here. Called on the
        listener's thread for every message: no lock, no database."""
        ws = self.config.workstation
        if (routing.unit and routing.unit in ws.locations) or \
                (ws.providers and set(routing.providers) & set(ws.providers)):
            return True
        open_now = self._open_identifiers
        return any(identifier in open_now for identifier in routing.identifiers)

    def _open_changed(self) -> None:
        """Tell the listeners (the worklist). They must not block: this may run with the
        lock held (the routing of an ADT)."""
        with self._open_lock:
            listeners = list(self.on_open_changed)
            self._open_identifiers = frozenset(
                i for pid in self._open for i in self._identifiers.get(pid, ()))
        patients = self.open_patients
        for listener in listeners:
            listener(patients)

    def _update_open(self, patient_id: int, **changes: object) -> bool:
        with self._open_lock:
            current = self._open.get(patient_id)
            if current is None:
                return False
            self._open[patient_id] = replace(current, **changes)  # type: ignore[arg-type]
            return True

    def open_patient(self, patient_id: int, source: str, now: datetime | None = None,
                     received_at: datetime | None = None, location: str = "") -> Alert | None:
        """Open (or re-open) a patient and score them now."""
        now = now or utcnow()
        name, dob, mrn, identifiers = self._read_patient(patient_id)
        with self._open_lock:
            self._identifiers[patient_id] = identifiers
            current = self._open.get(patient_id)
            if current is None:
                self._open[patient_id] = OpenPatient(patient_id, name, dob, mrn, now, source,
                                                     location)
            elif location:
                self._open[patient_id] = replace(current, location=location)
        if current is None:
            logs.alerts.info("patient %s opened (%s)", patient_id, source)
        self._open_changed()
        alert = self.evaluate(patient_id, now, received_at)
        self.evaluate_ecg(patient_id, now, received_at)
        return alert

    def open_by_identifier(self, mrn: str, authority: str | None, source: str) -> Alert | None:
        """EHR launch: `clarion open --mrn` or `clarion://open?mrn=…&authority=…`."""
        with Session(self.engine) as session:
            found = find_by_identifier(session, mrn, authority)
        if len(found) != 1:
            raise LookupError(f"patient {mrn!r}" + (f" ({authority})" if authority else "")
                              + (" not found" if not found else
                                 " is ambiguous across authorities; give the authority"))
        return self.open_patient(found[0].id, source)

    def close_patient(self, patient_id: int) -> None:
        with self._open_lock:
            closed = self._open.pop(patient_id, None) is not None
            self._identifiers.pop(patient_id, None)
        if closed:
            self._open_changed()

    def summary(self, patient_id: int, now: datetime | None = None) -> PatientSummary:
        """What the patient view shows: demographics, current risks with their factors,
        the trends behind them, and the alert history. Scores without logging anything."""
        now = now or utcnow()
        name, dob, mrn, _ = self._read_patient(patient_id)
        self.log.flush()  # the history includes what the clinician just did
        # Not under `_lock`: a click must not wait behind the feed (during the soak's
        # flood it waited 0.7 s at the median, up to 5 s). The scorer serializes its
        # engine itself.
        result = self.scorer.score(patient_id, now)
        features = result.features
        assert features is not None
        return PatientSummary(
            patient_id, name, dob, mrn, features.sex,
            age_on(features.birth_date, now.date()),
            tuple(result.scores) + tuple(self.ecg_scores(patient_id)), result.engine,
            self.model, trends_of(features), alert_history(self.engine, patient_id))

    def close(self) -> None:
        """Write the adoption events still waiting; call before the store is closed. Let
        the engine keep what it compiled (TensorRT-RTX's runtime cache)."""
        self.log.close()
        self.scorer.engine.close()

    def search(self, text: str, limit: int = 20) -> list[tuple[int, str, str, str]]:
        """By hand: patients whose name or identifier matches `text`."""
        like = f"%{text.strip()}%"
        with Session(self.engine) as session:
            ids = session.scalars(select(Patient.id).outerjoin(PatientIdentifier).where(
                Patient.merged_into_id.is_(None),
                or_(Patient.family_name.ilike(like), Patient.given_name.ilike(like),
                    PatientIdentifier.value.ilike(like))).distinct().limit(limit)).all()
        return [(pid, *self._describe(pid)) for pid in ids]

    def _routed_here(self, change: PatientChanged) -> bool:
        ws = self.config.workstation
        unit = change.location.split("^")[0]
        return bool((unit and unit in ws.locations) or
                    set(change.providers) & set(ws.providers))

    # -- the feed ---------------------------------------------------------------------
    def on_patient_changed(self, change: PatientChanged) -> None:
        """Called by the ingest processor after each committed message."""
        self.last_message_at = change.processed_at
        self.messages_seen += 1
        if change.trigger == "A40":
            self.features.invalidate()
        if change.message_type == "ADT" and self._routed_here(change):
            # Changes reach us from two processors (the fast lane and the worker process),
            # each in order, but not in order with each other: an arrival delivered after
            # the same patient's later discharge must not reopen them. Inbox ids follow
            # the order of receipt.
            # The check and the opening or closing happen under one lock: otherwise a
            # discharge could be applied between an arrival's check and its opening.
            with self._lock:
                if change.message_id <= self._last_routing.get(change.patient_id, 0):
                    logs.alerts.info("patient %s: routing message %d older than one already "
                                     "applied; ignored", change.patient_id, change.message_id)
                    return
                self._last_routing[change.patient_id] = change.message_id
                if change.trigger in OPENING_TRIGGERS:
                    self.open_patient(change.patient_id, "adt",
                                      received_at=change.received_at, location=change.location)
                    return
                if change.trigger in CLOSING_TRIGGERS:
                    self.close_patient(change.patient_id)
                    return
        with self._open_lock:
            is_open = change.patient_id in self._open
        if is_open and change.message_type == "ORU":
            self.evaluate(change.patient_id, utcnow(), change.received_at, change.processed_at)
            self.evaluate_ecg(change.patient_id, utcnow(), change.received_at,
                              change.processed_at)
        if change.loincs:  # after the banner, on the log's thread: nobody waits for it
            self.log.then(lambda: self._close_loop(change))

    def _close_loop(self, change: PatientChanged) -> None:
        since = change.processed_at - timedelta(days=365)  # follow-through counts for a year
        latest: dict[str, float] | None = None
        for alert_id, loincs in self.log.open_recommendations(change.patient_id, since):
            done = sorted(set(loincs) & set(change.loincs))
            if done:
                if latest is None:  # the results' values, for the yield (abnormal or not)
                    features = self.features.get(change.patient_id)
                    latest = {name: values[0][1] for name in ABNORMAL_FROM
                              if (values := features.values_of(name))}
                inputs = {LOINC[c] for c in done if c in LOINC} & set(ABNORMAL_FROM)
                known = [latest[n] >= ABNORMAL_FROM[n] for n in inputs if n in latest]
                self.log.record(alert_id, AlertEventType.SCREENING_COMPLETED, change.patient_id,
                                at=change.processed_at, model=self.model,
                                reason="result received: " + ", ".join(done),
                                detail={"abnormal": any(known)} if known else {})

    # -- scoring and policy -----------------------------------------------------------
    def evaluate(self, patient_id: int, now: datetime, received_at: datetime | None = None,
                 processed_at: datetime | None = None) -> Alert | None:
        """Score, decide, log the decision; return (and announce) the alert if shown."""
        started = time.perf_counter()
        with self._lock:
            result = self.scorer.score(patient_id, now)
            [score] = result.scores
            return self._decide(result, score, self.policy, self.model, now, started,
                                received_at, processed_at, worklist_risk=True)

    def evaluate_ecg(self, patient_id: int, now: datetime, received_at: datetime | None = None,
                     processed_at: datetime | None = None) -> list[Alert]:
        """Analyse the patient's newest recording not analysed yet (if any) with the ECG
        models; decide, log and announce each model's result like any other."""
        if self.ecg is None:
            return []
        started = time.perf_counter()
        with self._lock:
            with self.engine.connect() as conn:
                new = [w for w in patient_waveforms(conn, [patient_id], limit=5,
                                                    after_id=self._ecg_seen.get(patient_id, 0))
                       if w.status != "document"]
            if not new:
                return []
            self._ecg_seen[patient_id] = max(w.id for w in new)
            analysis = self.ecg.analyse(new[0])  # the newest: older ones are history
            self._ecg_latest[patient_id] = analysis
            features = self.features.get(patient_id)
            alerts = []
            for model, score in ecg_scores(self.ecg.models, analysis):
                stages = {"features": analysis.latency_ms.get("preprocess_qrs", 0.0)
                          + analysis.latency_ms.get("preprocess_rhythm", 0.0),
                          "inference": analysis.latency_ms.get(
                              "inference_rhythm" if model is self.ecg.rhythm
                              else "inference_beats", 0.0)}
                result = ScoreResult(patient_id, [score], model.selection.engine.name,
                                     model.name, stages, features)
                alert = self._decide(result, score, self.ecg_policies[model.card.id],
                                     model.name, now, started, received_at, processed_at,
                                     worklist_risk=False)
                if alert is not None:
                    alerts.append(alert)
            logs.alerts.info("recording %d of patient %s analysed in %.1f ms (%s)",
                             analysis.waveform_id, patient_id,
                             analysis.latency_ms.get("total", 0.0),
                             "readable" if analysis.readable else "unreadable")
            return alerts

    def ecg_scores(self, patient_id: int) -> list[Score]:
        """The scores of the patient's latest analysed recording (the patient view), reading
        and analysing it first if this session has not yet."""
        if self.ecg is None:
            return []
        analysis = self._ecg_latest.get(patient_id)  # analysed already: no lock needed
        if analysis is not None:
            return [score for _model, score in ecg_scores(self.ecg.models, analysis)]
        with self._lock:
            analysis = self._ecg_latest.get(patient_id)
            if analysis is None:
                with self.engine.connect() as conn:
                    stored = [w for w in patient_waveforms(conn, [patient_id], limit=5)
                              if w.status != "document"]
                if not stored:
                    return []
                analysis = self.ecg.analyse(stored[0])
                self._ecg_latest[patient_id] = analysis
        return [score for _model, score in ecg_scores(self.ecg.models, analysis)]

    def _decide(self, result: ScoreResult, score: Score, policy: AlertPolicy, model: str,
                now: datetime, started: float, received_at: datetime | None,
                processed_at: datetime | None, *, worklist_risk: bool) -> Alert | None:
        """The policy's decision on one score, logged; the alert announced if shown.
        Called with the lock held."""
        patient_id = result.patient_id
        features = result.features  # already refreshed by the scorer: no second read
        assert features is not None
        decision = policy.decide(score, features, now)
        alert_id = new_alert_id()
        t_policy = (time.perf_counter() - started) * 1000 - sum(result.latency_ms.values())
        extra = {"policy": round(max(t_policy, 0.0), 3)}
        if received_at is not None:
            extra["received_to_scoring"] = round(
                (now - received_at).total_seconds() * 1000, 3)
            if processed_at is not None:  # frame → stored and processed → scoring
                extra["received_to_processed"] = round(
                    (processed_at - received_at).total_seconds() * 1000, 3)
        detail = alert_detail(result, decision, extra)
        t_log = time.perf_counter()
        if decision.show:  # written by the log's thread: the banner does not wait
            self.log.record_shown(alert_id, patient_id, at=now, model=model,
                                  label=score.label, risk=score.risk, tier=decision.tier,
                                  engine=result.engine, reason=decision.reason,
                                  detail=detail)
        else:
            self.log.record(alert_id, AlertEventType.SUPPRESSED, patient_id, at=now,
                            model=model, label=score.label, risk=score.risk,
                            tier=decision.tier, engine=result.engine,
                            reason=decision.reason, detail=detail)
        status = ("alert raised" if decision.show else
                  "suppressed: " + decision.reason.split(": ", 1)[-1])
        if worklist_risk:
            changed = self._update_open(patient_id, risk=score.risk, tier=decision.tier,
                                        tier_words=decision.tier_words,
                                        finding=score.finding or "", status=status)
        else:  # another model's banner: the worklist keeps the risk, tells the news
            changed = decision.show and self._update_open(
                patient_id, status=f"{score.display}: alert raised")
        if not decision.show:
            if changed:
                self._open_changed()
            return None
        with self._open_lock:
            shown = self._open.get(patient_id)  # open patients are described already
        name, dob, mrn = (shown.name, shown.birth_date, shown.mrn) if shown else \
            self._describe(patient_id)
        # The decision's durable record is a stage of its own, apart from painting.
        latency = {**detail["latency_ms"],
                   "log": round((time.perf_counter() - t_log) * 1000, 3)}
        alert = Alert(alert_id, patient_id, name, dob, mrn, score, decision.tier,
                      decision.tier_words, model, result.engine,
                      list(decision.recommendations), list(decision.already_done), now,
                      latency)
        for listener in list(self.on_alert):  # the banner first, then the worklist's news
            listener(alert)
        if changed:
            self._open_changed()
        return alert

    def record(self, alert: Alert, event: AlertEventType, *, reason: str = "",
               comment: str = "", detail: dict[str, object] | None = None) -> None:
        """What the clinician did with a banner (called on the GUI thread: written by the
        log's own thread, so the window never waits for the database)."""
        self.log.record_later(alert.alert_id, event, alert.patient_id, at=utcnow(),
                              model=alert.model, label=alert.score.label,
                              risk=alert.score.risk, tier=alert.tier, engine=alert.engine,
                              reason=reason, comment=comment, detail=detail)
        words = "screening done" if event is AlertEventType.SCREENING_COMPLETED else \
            outcome_words(event, reason)
        if words is not None and self._update_open(alert.patient_id, status=words):
            self._open_changed()
