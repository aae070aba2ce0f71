"""A recording's analysis as scores the alert policy reads, in a doctor's words.

- Rhythm (`ecg_rhythm`): the risk is the probability of atrial fibrillation over the
  strip; the words say for how many of its seconds, whether the RR intervals are
  irregular, and the heart rate ("AF in 27 of 30 s, irregular RR, 112/min").
- Beats (`ecg_beats`): the risk is the share of the card's `burden_classes` (the shipped
  model: V only; S and V where a card names none) among the beats classed ("PVCs 14 % of
  2,210 beats"); fewer than the card's `min_beats` beats are not scored.
An unreadable strip gets no risk ("not-applicable"): the policy logs it, nothing is shown.
"""

from __future__ import annotations

from app.clinic.scoring import Factor, Score
from app.ecg.analysis import EcgAnalysis, EcgModel

_BEAT_NAMES = {"V": "PVCs", "S": "PACs", "F": "fusion beats"}


def _not_applicable(model: EcgModel, analysis: EcgAnalysis, why: str) -> Score:
    return Score(model.card.label, model.card.display, None, "not-applicable",
                 "Recording not analysed", (), out_of_scope=why,
                 summary=f"{model.card.display}: {why}", at=analysis.started_at,
                 strip=analysis.strip)


def rhythm_score(model: EcgModel, analysis: EcgAnalysis) -> Score:
    if not analysis.readable:
        return _not_applicable(model, analysis, "unreadable: " + "; ".join(analysis.problems))
    risk = analysis.af_probability or 0.0
    card = model.card
    tier = card.tier_for(risk)
    af_s, total_s = analysis.rhythm_seconds.get("A", 0), sum(analysis.rhythm_seconds.values())
    parts = [f"AF in {af_s} of {total_s} s" if af_s else f"no AF in {total_s} s"]
    factors = [Factor("Rhythm", f"AF in {af_s} of {total_s} s; AF probability {risk:.0%} "
                                f"({analysis.lead}, {analysis.seconds:.0f}-s recording)", risk)]
    if analysis.irregular and analysis.rr_cv is not None:
        parts.append("irregular RR")
        factors.append(Factor("RR", f"Irregular RR intervals (variation "
                                    f"{analysis.rr_cv:.0%})", 0.0))
    if analysis.mean_hr is not None:
        parts.append(f"{analysis.mean_hr:.0f}/min")
        factors.append(Factor("Rate", f"Mean heart rate {analysis.mean_hr:.0f}/min", 0.0))
    return Score(card.label, card.display, risk, tier.name if tier else "low",
                 tier.words if tier else "No atrial fibrillation seen", tuple(factors),
                 summary=(f"{tier.words if tier else 'Rhythm'} ({', '.join(parts)})"),
                 classes=dict(analysis.rhythm_probs), at=analysis.started_at,
                 strip=analysis.strip)


def beats_score(model: EcgModel, analysis: EcgAnalysis) -> Score:
    card = model.card
    if not analysis.readable:
        return _not_applicable(model, analysis, "unreadable: " + "; ".join(analysis.problems))
    minimum = int(card.raw.get("min_beats", 30))
    if analysis.beats < minimum:
        return _not_applicable(model, analysis, f"{analysis.beats} beats; at least {minimum} "
                                                "are needed for a burden")
    risk = analysis.burden(*card.raw.get("burden_classes", ("S", "V")))
    tier = card.tier_for(risk)
    counted = []
    for cls in ("V", "S", "F"):
        n = analysis.beat_counts.get(cls, 0)
        if n:
            counted.append((n, cls))
    counted.sort(reverse=True)
    words = [f"{_BEAT_NAMES[c]} {n / analysis.beats:.0%} of {analysis.beats:,} beats"
             for n, c in counted if c != "F"]
    factors = tuple(Factor(_BEAT_NAMES[c], f"{_BEAT_NAMES[c]}: {n:,} of {analysis.beats:,} "
                                           f"beats ({n / analysis.beats:.1%})",
                           n / analysis.beats) for n, c in counted)
    summary = "; ".join(words) or f"no premature beats in {analysis.beats:,} beats"
    return Score(card.label, card.display, risk, tier.name if tier else "low",
                 tier.words if tier else "Beat classes", factors,
                 summary=f"{tier.words}: {summary}" if tier else summary,
                 classes={k: float(v) for k, v in analysis.beat_counts.items()},
                 at=analysis.started_at, strip=analysis.strip)


def ecg_scores(models: list[EcgModel], analysis: EcgAnalysis) -> list[tuple[EcgModel, Score]]:
    """One score per installed ECG model for the recording."""
    out = []
    for model in models:
        score = rhythm_score(model, analysis) if model.card.kind == "ecg_rhythm" else \
            beats_score(model, analysis)
        out.append((model, score))
    return out
