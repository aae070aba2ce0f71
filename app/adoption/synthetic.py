"""A synthetic adoption log whose true rates are known: for the tests of the figures and
the anomaly check, the dashboard's screenshots and the benchmark (no patient data: the
events point at synthetic patients the generator creates).

Weekdays only (clinics), each clinician Poisson(`per_clinician_day`) alerts a day; each
alert's latency is drawn from a spread of buckets and it is viewed with the probability
`VIEW_BY_LATENCY` gives its bucket (the relation the latency chart should recover); the
outcome, the dismissal reason, follow-through and yield have fixed true rates. On the
`feed_outages` days no message arrives and nothing fires; on the `mapping_outages`
days messages arrive but nothing is scored; on the `model_outages` days everything is
scored but the model gives no risk, so nothing is shown.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert

from app.store.models import AlertEvent, InboxMessage, Patient, table_of

# (low, high) ms → probability of being viewed: the built-in latency/viewing relation.
VIEW_BY_LATENCY = {(0.0, 25.0): 0.80, (25.0, 50.0): 0.65, (50.0, 100.0): 0.45,
                   (100.0, 400.0): 0.25}
OUTCOMES = {"acknowledged": 0.5, "dismissed": 0.3, "snoozed": 0.1, "expired": 0.1}
REASONS = {"already-screened": 0.4, "not-relevant": 0.35, "patient-declined": 0.15,
           "other": 0.1}
FOLLOW_THROUGH = 0.4  # recommended test resulted within 90 days
ABNORMAL = 0.3  # of those, how many came back abnormal (the yield)
SUPPRESSED_PER_ALERT = 1.5
MESSAGES_PER_ALERT = 6
COMMENTS = ("seen by endocrinology last week", "=HYPERLINK(\"http://x\")", "wrong patient?",
            "+1 already ordered", "@pharmacy", "-- duplicate of earlier alert")


@dataclass
class SyntheticLog:
    """What was written, for the tests to compare against."""

    days: list[date]
    alerts: int = 0
    events: int = 0
    messages: int = 0
    feed_outages: tuple[date, ...] = ()
    mapping_outages: tuple[date, ...] = ()
    truth: dict[str, Any] = field(default_factory=dict)


def write_log(engine: Engine, end: date, days: int = 90, clinicians: int = 4,
              workstations: int = 3, per_clinician_day: float = 5.0,
              feed_outages: Iterable[date] = (), mapping_outages: Iterable[date] = (),
              model_outages: Iterable[date] = (), seed: int = 13, department: str = "ER",
              with_messages: bool = True, chunk: int = 20_000,
              every_day: bool = False) -> SyntheticLog:
    """Write `days` days of adoption events ending on `end` (inclusive): weekdays only
    (a clinic), or `every_day` (an emergency department)."""
    rng = np.random.default_rng(seed)
    feed, mapping, model = tuple(feed_outages), tuple(mapping_outages), tuple(model_outages)
    start = end - timedelta(days=days - 1)
    log = SyntheticLog([start + timedelta(days=i) for i in range(days)], feed_outages=feed,
                       mapping_outages=mapping,
                       truth={"view_by_latency": VIEW_BY_LATENCY, "outcomes": OUTCOMES,
                              "reasons": REASONS, "follow_through": FOLLOW_THROUGH,
                              "abnormal": ABNORMAL, "per_clinician_day": per_clinician_day})
    with engine.begin() as conn:
        conn.execute(insert(table_of(Patient)), [
            {"family_name": "SYNTHETIC", "given_name": f"Adoption{i}", "sex": "F", "race": "",
             "ethnicity": "", "deceased": False, "created_at": datetime.now(UTC),
             "updated_at": datetime.now(UTC)} for i in range(20)])
        first_patient = conn.execute(
            table_of(Patient).select().order_by(table_of(Patient).c.id.desc()).limit(20)
        ).all()[-1].id
    events: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    buckets = list(VIEW_BY_LATENCY.items())

    def flush(force: bool = False) -> None:
        if events and (force or len(events) >= chunk):
            with engine.begin() as conn:
                conn.execute(insert(table_of(AlertEvent)), events)
            log.events += len(events)
            events.clear()
        if messages and (force or len(messages) >= chunk):
            with engine.begin() as conn:
                conn.execute(insert(table_of(InboxMessage)), messages)
            log.messages += len(messages)
            messages.clear()

    def event(alert_id: str, kind: str, at: datetime, base: dict[str, Any],
              **extra: Any) -> None:
        events.append({**base, "alert_id": alert_id, "event": kind, "at": at,
                       "reason": extra.pop("reason", ""), "comment": extra.pop("comment", ""),
                       "detail": json.dumps(extra.pop("detail", {}))})

    for day in log.days:
        if (day.weekday() >= 5 and not every_day) or day in feed:
            continue
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        n_alerts = 0
        for c in range(clinicians):
            n = int(rng.poisson(per_clinician_day))
            n_alerts += n
            if day in mapping:
                continue
            for _ in range(n):
                alert_id = str(uuid.uuid4())
                at = midnight + timedelta(hours=8, seconds=float(rng.uniform(0, 9 * 3600)))
                tier = "high" if rng.random() < 0.4 else "elevated"
                base = {"workstation": f"ws{(c + int(rng.integers(0, 2))) % workstations}",
                        "clinician": f"dr{c}", "department": department,
                        "patient_id": first_patient + int(rng.integers(0, 20)),
                        "model": "t2d 1.0.0", "label": "t2d_12m",
                        "risk": float(rng.uniform(0.3, 0.95)), "tier": tier,
                        "engine": "onnxruntime-cpu"}
                if day in model:  # scored, but no risk: nothing to show
                    event(alert_id, "suppressed", at, {**base, "risk": None},
                          reason="out-of-scope: no risk computed")
                    continue
                (low, high), p_view = buckets[int(rng.integers(0, len(buckets)))]
                latency = float(rng.uniform(low, high))
                event(alert_id, "generated", at, base, reason="shown",
                      detail={"latency_ms": {"policy": 1.0}, "screening_loinc": ["4548-4"]})
                shown = at + timedelta(milliseconds=latency)
                event(alert_id, "displayed", shown, base,
                      detail={"latency_ms": {"total": latency}})
                t = shown
                if rng.random() < p_view:
                    t = shown + timedelta(seconds=float(rng.uniform(1, 20)))
                    event(alert_id, "viewed", t, base, reason="details")
                outcome = rng.choice(list(OUTCOMES), p=list(OUTCOMES.values()))
                t = t + timedelta(seconds=float(rng.uniform(0.5, 30)))
                if outcome == "dismissed":
                    reason = str(rng.choice(list(REASONS), p=list(REASONS.values())))
                    comment = str(rng.choice(COMMENTS)) if reason == "other" else ""
                    event(alert_id, "dismissed", t, base, reason=reason, comment=comment)
                else:
                    event(alert_id, str(outcome), t, base)
                if rng.random() < FOLLOW_THROUGH:
                    abnormal = bool(rng.random() < ABNORMAL)
                    event(alert_id, "screening_completed",
                          at + timedelta(days=float(rng.uniform(1, 60))), base,
                          reason="result received: 4548-4", detail={"abnormal": abnormal})
                for _ in range(int(rng.poisson(SUPPRESSED_PER_ALERT))):
                    event(str(uuid.uuid4()), "suppressed", at, base,
                          reason="recently-shown: shown earlier")
                log.alerts += 1
        if with_messages:
            for m in range(int(rng.poisson(max(n_alerts, 1) * MESSAGES_PER_ALERT))):
                at = midnight + timedelta(hours=7, seconds=float(rng.uniform(0, 11 * 3600)))
                kind = "ORU" if m % 3 else "ADT"
                messages.append({
                    "received_at": at, "peer": "synthetic", "sending_application": "LAB",
                    "sending_facility": "H", "control_id": f"S{day:%Y%m%d}{m}",
                    "content_hash": uuid.uuid4().hex, "message_type": kind,
                    "trigger": "R01" if kind == "ORU" else "A08", "version": "2.5",
                    "charset": "ascii", "raw": b"", "status": "processed", "ack_code": "AA",
                    "ack_error_code": "", "ack_error_text": "", "ack_error_location": "",
                    "attempts": 1, "last_error": "", "patient_key": "", "lane": "",
                    "duplicate_count": 0})
        flush()
    flush(force=True)
    return log
