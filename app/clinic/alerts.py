"""The alert policy and the `Alert` it produces (no Qt).

A score becomes a banner only if the policy says so, and every decision — shown or
suppressed, and why — is written to the adoption log (app/adoption/log.py).

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

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.adoption.log import AdoptionLog
from app.clinic.features import PatientFeatures
from app.clinic.scoring import Score, ScoreResult
from app.config import AlertsConfig
from engines.card import ModelCard, Screening


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
        if self.score.summary:
            return self.score.summary
        if self.score.risk is None:
            return self.score.finding
        return f"{self.score.statement} — {self.tier_words}"


@dataclass(frozen=True, slots=True)
class Decision:
    show: bool
    reason: str
    tier: str
    tier_words: str
    recommendations: tuple[Screening, ...]
    already_done: tuple[str, ...]


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
