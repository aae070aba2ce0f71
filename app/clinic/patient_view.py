"""What the patient view shows, computed in the core (no Qt): demographics, each model's
current risk with its top factors, the trends behind it, and the patient's alert history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.adoption.log import UNSETTLED, AlertEventType, outcome_words
from app.charts import TRENDS
from app.clinic.features import PatientFeatures
from app.clinic.scoring import Score
from app.store.models import AlertEvent

TREND_INPUTS = tuple(name for spec in TRENDS for name, _ in spec.series)


@dataclass(frozen=True, slots=True)
class AlertHistoryRow:
    """One alert decision for the patient and what became of it."""

    alert_id: str
    at: datetime
    model: str
    risk: float | None
    tier: str
    decision: str  # "shown", or "suppressed: why"
    outcome: str  # "acknowledged", "dismissed: patient declined", "expired unseen", ...
    screening_done: bool


@dataclass(frozen=True, slots=True)
class PatientSummary:
    """Everything the patient view draws, for one patient at one moment."""

    patient_id: int
    name: str
    birth_date: str
    mrn: str
    sex: str
    age: int | None
    scores: tuple[Score, ...]
    engine: str
    model: str
    trends: dict[str, list[tuple[datetime, float]]]
    alerts: tuple[AlertHistoryRow, ...]


def age_on(birth: date | None, today: date) -> int | None:
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def trends_of(features: PatientFeatures) -> dict[str, list[tuple[datetime, float]]]:
    """The trend inputs' values, oldest first, in the card's units."""
    return {name: sorted(features.values_of(name)) for name in TREND_INPUTS}


def alert_history(engine: Engine, patient_id: int, limit: int = 50
                  ) -> tuple[AlertHistoryRow, ...]:
    """The patient's latest alert decisions, newest first, each with its outcome."""
    with Session(engine) as session:
        decided = session.execute(
            select(AlertEvent.alert_id, AlertEvent.at, AlertEvent.model, AlertEvent.risk,
                   AlertEvent.tier, AlertEvent.event, AlertEvent.reason)
            .where(AlertEvent.patient_id == patient_id,
                   AlertEvent.event.in_([AlertEventType.GENERATED.value,
                                         AlertEventType.SUPPRESSED.value]))
            .order_by(AlertEvent.at.desc(), AlertEvent.id.desc()).limit(limit)).all()
        ids = [row.alert_id for row in decided]
        later = session.execute(
            select(AlertEvent.alert_id, AlertEvent.event, AlertEvent.reason)
            .where(AlertEvent.alert_id.in_(ids)).order_by(AlertEvent.id)).all() if ids else []
    outcome: dict[str, str] = {}
    done: set[str] = set()
    for alert_id, event, reason in later:
        if event == AlertEventType.SCREENING_COMPLETED.value:
            done.add(alert_id)
        words = outcome_words(event, reason)
        # A settled alert stays settled: "viewed" after "acknowledged" is not news.
        if words is not None and outcome.get(alert_id, "shown") in UNSETTLED:
            outcome[alert_id] = words
    rows = []
    for r in decided:
        shown = r.event == AlertEventType.GENERATED.value
        decision = "shown" if shown else "suppressed: " + r.reason.split(": ", 1)[-1]
        rows.append(AlertHistoryRow(r.alert_id, r.at, r.model, r.risk, r.tier, decision,
                                    outcome.get(r.alert_id, "waiting" if shown else ""),
                                    r.alert_id in done))
    return tuple(rows)

