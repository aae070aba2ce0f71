"""Alert policy and the adoption log (no Qt).

A score becomes a banner only if the policy says so, and every decision — shown or
suppressed, and why — is written to the append-only `alert_events` table, as is everything
that happens to a banner afterwards (displayed, viewed, acknowledged, dismissed with a
reason, snoozed, expired) and, when a later result carries a recommended test, the closing
of the loop (screening_completed).

Policy, in order:
1. Out of the model's intended use (diabetes on record) with no finding: nothing to show.
2. Already screened: a recommended test resulted within the card's window (90 days) is
   dropped from the recommendation and lowers the tier by one.
3. Below every tier and no finding: nothing to show.
4. Suppression: the same model and patient were shown within `suppress_days`, and the
   risk has not risen by `rise_margin` since.
5. Rate limit: this clinician has had `max_per_hour` banners in the last hour.
"""

from __future__ import annotations

import getpass
import json
import platform
import queue
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app import logs
from app.config import AlertsConfig, WorkstationConfig
from app.features import PatientFeatures
from app.scoring import Score, ScoreResult
from engines.card import ModelCard, Screening


class AlertEventType(StrEnum):
    GENERATED = "generated"  # the policy decided to show it
    SUPPRESSED = "suppressed"  # the policy decided not to, with the reason
    DISPLAYED = "displayed"  # painted on screen
    VIEWED = "viewed"  # Details opened, or on screen for the dwell time with focus
    ACKNOWLEDGED = "acknowledged"
    DISMISSED = "dismissed"  # with a coded reason
    SNOOZED = "snoozed"
    EXPIRED = "expired"
    SCREENING_COMPLETED = "screening_completed"


class DismissReason(StrEnum):
    """Coded dismissal reasons (after CDS Hooks' overrideReasons)."""

    ALREADY_SCREENED = "already-screened"
    NOT_RELEVANT = "not-relevant"
    PATIENT_DECLINED = "patient-declined"
    OTHER = "other"


DISMISS_WORDS = {DismissReason.ALREADY_SCREENED: "Already screened",
                 DismissReason.NOT_RELEVANT: "Not relevant for this patient",
                 DismissReason.PATIENT_DECLINED: "Patient declined",
                 DismissReason.OTHER: "Other"}


@dataclass
class Alert:
    """What the banner shows: everything a doctor needs to act, and to trust it."""

    alert_id: str
    patient_id: int
    patient_name: str
    birth_date: str
    mrn: str
    score: Score
    tier: str
    tier_words: str
    model: str
    engine: str
    recommendations: list[Screening]
    already_done: list[str]
    generated_at: datetime
    latency_ms: dict[str, float] = field(default_factory=dict)

    def latency_at(self, shown_at: datetime) -> dict[str, float]:
        """The stages of this alert's latency once it is on screen at `shown_at`, in ms:
        the measured ones (received_to_processed, received_to_scoring, features, inference,
        policy, log: the decision's durable record), plus processed_to_scoring, paint
        (scoring start → shown, less the computation and the record) and total (frame
        received → shown) where the frame time is known."""
        stages = dict(self.latency_ms)
        computed = sum(stages.get(k, 0.0) for k in ("features", "inference", "policy", "log"))
        since_scoring = (shown_at - self.generated_at).total_seconds() * 1000
        stages["paint"] = round(max(since_scoring - computed, 0.0), 3)
        if "received_to_scoring" in stages:
            stages["total"] = round(stages["received_to_scoring"] + since_scoring, 3)
            if "received_to_processed" in stages:
                stages["processed_to_scoring"] = round(
                    stages["received_to_scoring"] - stages["received_to_processed"], 3)
        return stages

    @property
    def headline(self) -> str:
        if self.score.risk is None:
            return self.score.finding
        return (f"{self.score.display} risk {self.score.risk:.0%} within 12 months — "
                f"{self.tier_words}")


@dataclass(frozen=True, slots=True)
class Decision:
    show: bool
    reason: str
    tier: str
    tier_words: str
    recommendations: tuple[Screening, ...]
    already_done: tuple[str, ...]


def identity(config: WorkstationConfig) -> tuple[str, str, str]:
    """(workstation, clinician, department) for the log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return (config.name or platform.node() or "workstation", config.clinician or user,
            config.department)


class AdoptionLog:
    """Appends alert events. Never updates or deletes (the database refuses both).

    `record` writes at once (the policy's decisions: the banner waits for them);
    `record_later` hands the write to the log's own writer thread, in order, so that what
    the clinician does on the GUI thread never waits for the database's write lock.
    """

    def __init__(self, engine: Engine, workstation: WorkstationConfig) -> None:
        from app.store.db import write_gate, writer

        self._engine = engine
        self._writer = writer(engine)
        self._gate = write_gate(engine)  # the inbox (ACK path) still goes first
        self.workstation, self.clinician, self.department = identity(workstation)
        self._later: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    def record_later(self, alert_id: str, event: AlertEventType, patient_id: int,
                     **fields: Any) -> None:
        """`record`, on the log's writer thread (events keep their order)."""
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._write_later, daemon=True,
                                                name="clarion-adoption-log")
                self._thread.start()
        self._later.put({"alert_id": alert_id, "event": event, "patient_id": patient_id,
                         **fields})

    def _write_later(self) -> None:
        while True:
            item = self._later.get()
            if item is None:
                self._later.task_done()
                return
            try:
                self.record(**item)
            except Exception as exc:  # said, never swallowed; the next events still go
                logs.alerts.error("adoption event %s of alert %s not written: %s",
                                  item["event"], str(item["alert_id"])[:8],
                                  logs.describe_error(exc))
            finally:
                self._later.task_done()

    def flush(self) -> None:
        """Until every event handed to `record_later` is written."""
        self._later.join()

    def close(self) -> None:
        """Write what is waiting, then stop the writer thread."""
        with self._thread_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._later.put(None)
            thread.join(30)

    def record(self, alert_id: str, event: AlertEventType, patient_id: int, *,
               at: datetime, model: str = "", label: str = "", risk: float | None = None,
               tier: str = "", engine: str = "", reason: str = "", comment: str = "",
               detail: dict[str, Any] | None = None, urgent: bool = False) -> None:
        """Append one event now. `urgent`: a banner waits for this write (the policy's
        decision), so it takes the write gate as the ACK path does rather than waiting for
        the background processing to give way."""
        from app.store.models import AlertEvent

        gate = self._gate.urgent() if urgent else self._gate.background()
        with gate, Session(self._writer) as session, session.begin():
            session.add(AlertEvent(
                alert_id=alert_id, event=event.value, at=at, workstation=self.workstation,
                clinician=self.clinician, department=self.department, patient_id=patient_id,
                model=model, label=label, risk=risk, tier=tier, engine=engine, reason=reason,
                comment=comment, detail=json.dumps(detail or {}, sort_keys=True)))
        logs.alerts.info("alert %s %s%s", alert_id[:8], event.value,
                         f" ({reason})" if reason else "")

    def last_shown(self, patient_id: int, model: str) -> tuple[datetime, float | None] | None:
        from app.store.models import AlertEvent

        with Session(self._engine) as session:
            row = session.execute(
                select(AlertEvent.at, AlertEvent.risk)
                .where(AlertEvent.patient_id == patient_id, AlertEvent.model == model,
                       AlertEvent.event == AlertEventType.GENERATED.value)
                .order_by(AlertEvent.at.desc()).limit(1)).first()
        return None if row is None else (row[0], row[1])

    def shown_since(self, since: datetime) -> int:
        from app.store.models import AlertEvent

        with Session(self._engine) as session:
            return int(session.scalar(select(func.count()).where(
                AlertEvent.clinician == self.clinician,
                AlertEvent.event == AlertEventType.GENERATED.value,
                AlertEvent.at >= since)) or 0)

    def open_recommendations(self, patient_id: int, since: datetime) -> list[tuple[str, list[str]]]:
        """(alert id, recommended LOINC codes) of this patient's alerts not yet followed up."""
        from app.store.models import AlertEvent

        with Session(self._engine) as session:
            rows = session.execute(select(AlertEvent.alert_id, AlertEvent.event,
                                          AlertEvent.detail).where(
                AlertEvent.patient_id == patient_id, AlertEvent.at >= since,
                AlertEvent.event.in_([AlertEventType.GENERATED.value,
                                      AlertEventType.SCREENING_COMPLETED.value]))).all()
        done = {r.alert_id for r in rows if r.event == AlertEventType.SCREENING_COMPLETED.value}
        out = []
        for r in rows:
            if r.event == AlertEventType.GENERATED.value and r.alert_id not in done:
                out.append((r.alert_id, json.loads(r.detail).get("screening_loinc", [])))
        return out


_LOWER = {"high": "elevated", "elevated": "low"}


class AlertPolicy:
    """Decides whether a score is shown, with the reason, from the card and the log."""

    def __init__(self, card: ModelCard, config: AlertsConfig, log: AdoptionLog) -> None:
        self.card = card
        self.config = config
        self.log = log

    def decide(self, score: Score, features: PatientFeatures, now: datetime) -> Decision:
        card = self.card
        tier_name = score.tier
        tier = next((t for t in card.tiers if t.name == tier_name), None)
        wanted = [card.screenings[s] for s in tier.screenings] if tier else \
            ([card.screenings["hba1c"]] if score.finding and "hba1c" in card.screenings else [])
        window = timedelta(days=card.already_screened_days)
        done, todo = [], []
        for screening in wanted:
            recent = [features.last_result_at[c] for c in screening.loinc
                      if c in features.last_result_at]
            if recent and now - max(recent) <= window:
                done.append(f"{screening.name} resulted {max(recent):%Y-%m-%d}")
            else:
                todo.append(screening)
        if done and tier_name in _LOWER:
            tier_name = _LOWER[tier_name]
        words = next((t.words for t in card.tiers if t.name == tier_name), "Low risk")

        def no(reason: str) -> Decision:
            return Decision(False, reason, tier_name, words, tuple(todo), tuple(done))

        # Reasons start with a code ("code: words") so the log can be counted by reason.
        if score.risk is None and not score.finding:
            return no(f"out-of-scope: {score.out_of_scope or 'no risk computed'}")
        if tier_name not in ("high", "elevated") and not score.finding:
            return no("already-screened: " + "; ".join(done) if done else
                      f"below-tiers: risk {score.risk:.0%} below every tier")
        model = f"{card.id} {card.version}"
        last = self.log.last_shown(features.patient_id, model)
        if last is not None and now - last[0] < timedelta(days=self.config.suppress_days):
            risen = (score.risk or 0) - (last[1] or 0)
            if risen < self.config.rise_margin:
                return no(f"recently-shown: shown {last[0]:%Y-%m-%d %H:%M} UTC at "
                          f"{(last[1] or 0):.0%}; risk has not risen by "
                          f"{self.config.rise_margin:.0%} since")
        if self.log.shown_since(now - timedelta(hours=1)) >= self.config.max_per_hour:
            return no(f"rate-limit: {self.config.max_per_hour} banners this hour for "
                      "this clinician")
        reason = "shown" + (f"; already screened: {'; '.join(done)}" if done else "")
        return Decision(True, reason, tier_name, words, tuple(todo), tuple(done))


def new_alert_id() -> str:
    return str(uuid.uuid4())


def alert_detail(result: ScoreResult, decision: Decision, extra_latency: dict[str, float]
                 ) -> dict[str, Any]:
    return {"latency_ms": {**extra_latency, **result.latency_ms},
            "screenings": [r.key for r in decision.recommendations],
            "screening_loinc": sorted({c for r in decision.recommendations for c in r.loinc}),
            "already_done": list(decision.already_done),
            "factors": [f.words for s in result.scores for f in s.factors]}
