"""Analysing a stored ECG: rhythm over the strip, class of every beat, words for a doctor.

One lead is read (II where the recording has it; lead II is the rhythm lead, and the
models were trained on it). The rhythm model scores overlapping windows (10 s every 5 s
on strips up to two minutes, 30 s every 15 s on longer recordings): each second's rhythm
is the majority of the windows over it, so "AF in 27 of 30 s" counts seconds; the strip's
AF probability is the mean over its windows. The beat model classes each detected beat
(N, S, V, F, Q), S by timing where its card says so (engines/signals.py `by_timing`, with
the rhythm model's AF seconds); the burden is the share of S and V beats. A strip the
quality checks or the rhythm model's "noisy" class call unreadable is reported so, not
guessed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from app.ecg.preprocess import PreparedLead, prepare
from app.store.waveforms import StoredWaveform
from engines.card import ModelCard
from engines.select import Selection
from engines.signals import (
    SignalSpec,
    TimingRule,
    beat_inputs,
    by_timing,
    rhythm_by_second,
)

log = logging.getLogger("clarion.ecg")
LEAD_ORDER = ("II", "MLII", "I", "V5", "V1", "III", "aVF")
STRIP_SECONDS = 8.0  # the excerpt drawn in the banner and the patient view


@dataclass(frozen=True, slots=True)
class Strip:
    """A few seconds of the lead for drawing: samples (mV), rate, beats and their classes."""

    samples: np.ndarray
    rate_hz: float
    peaks: np.ndarray  # sample indices within `samples`
    classes: tuple[str, ...]  # one per peak ("" where the beat model did not run)
    lead: str
    offset_s: float  # where the excerpt starts in the recording


@dataclass
class EcgAnalysis:
    """What one recording shows."""

    waveform_id: int
    patient_id: int
    started_at: datetime | None
    seconds: float
    lead: str
    problems: tuple[str, ...] = ()  # unreadable: why
    rhythm_probs: dict[str, float] = field(default_factory=dict)  # strip-level, per class
    rhythm_seconds: dict[str, int] = field(default_factory=dict)  # seconds per class
    beat_counts: dict[str, int] = field(default_factory=dict)
    mean_hr: float | None = None
    rr_cv: float | None = None  # coefficient of variation of the RR intervals
    strip: Strip | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    rhythm_model: str = ""
    beats_model: str = ""
    rhythm_engine: str = ""
    beats_engine: str = ""

    @property
    def readable(self) -> bool:
        return not self.problems

    @property
    def beats(self) -> int:
        return sum(self.beat_counts.values())

    @property
    def af_probability(self) -> float | None:
        return self.rhythm_probs.get("A")

    @property
    def irregular(self) -> bool:
        return self.rr_cv is not None and self.rr_cv > 0.12

    def burden(self, *classes: str) -> float:
        total = self.beats
        return sum(self.beat_counts.get(c, 0) for c in classes) / total if total else 0.0


@dataclass(frozen=True, slots=True)
class EcgModel:
    """A card and the engine chosen for it."""

    card: ModelCard
    selection: Selection

    @property
    def spec(self) -> SignalSpec:
        return SignalSpec.from_card(self.card.raw["signal"])

    @property
    def name(self) -> str:
        return f"{self.card.id} {self.card.version}"

    def infer(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.selection.engine.infer(batch)


class EcgAnalyzer:
    """Runs the ECG models over stored recordings. Thread-safe as long as its engines are
    (ONNX Runtime sessions are)."""

    def __init__(self, rhythm: EcgModel | None, beats: EcgModel | None) -> None:
        self.rhythm = rhythm
        self.beats = beats

    @property
    def models(self) -> list[EcgModel]:
        return [m for m in (self.rhythm, self.beats) if m is not None]

    def analyse(self, waveform: StoredWaveform) -> EcgAnalysis:
        started = time.perf_counter()
        lead = waveform.lead(LEAD_ORDER)
        analysis = EcgAnalysis(waveform.id, waveform.patient_id, waveform.started_at,
                               waveform.seconds, lead.name if lead else "")
        if lead is None or not waveform.rate_hz or waveform.status != "ok":
            analysis.problems = waveform.problems or ("no lead to analyse",)
            return analysis
        latency = analysis.latency_ms
        beat_lead: PreparedLead | None = None
        if self.beats is not None:
            t0 = time.perf_counter()
            beat_lead = prepare(lead.samples, waveform.rate_hz, self.beats.spec)
            latency["preprocess_qrs"] = (time.perf_counter() - t0) * 1000
            analysis.problems = beat_lead.problems
        rhythm_lead: PreparedLead | None = None
        if self.rhythm is not None:
            t0 = time.perf_counter()
            # The beats are found once, at the beat model's rate, and carried over.
            rhythm_lead = prepare(lead.samples, waveform.rate_hz, self.rhythm.spec, beat_lead)
            latency["preprocess_rhythm"] = (time.perf_counter() - t0) * 1000
            analysis.problems = rhythm_lead.problems
        reference = beat_lead or rhythm_lead
        assert reference is not None, "an analyzer with no model"
        if len(reference.peaks) >= 3:
            rr = np.diff(reference.peaks) / reference.rate_hz
            analysis.mean_hr = 60.0 / float(np.mean(rr))
            analysis.rr_cv = float(np.std(rr) / np.mean(rr))
        classes: np.ndarray | None = None
        af_seconds: np.ndarray | None = None
        if analysis.readable and rhythm_lead is not None and self.rhythm is not None:
            t0 = time.perf_counter()
            by_second = self._rhythm(analysis, rhythm_lead, self.rhythm)
            if "A" in self.rhythm.card.classes:
                af_seconds = by_second == self.rhythm.card.classes.index("A")
            latency["inference_rhythm"] = (time.perf_counter() - t0) * 1000
            noisy = analysis.rhythm_probs.get("~", 0.0)
            if noisy > 0.5 and noisy == max(analysis.rhythm_probs.values()):
                analysis.problems = (f"too noisy to read (the rhythm model's noise class, "
                                     f"{noisy:.0%})",)
        if analysis.readable and beat_lead is not None and self.beats is not None:
            t0 = time.perf_counter()
            classes = self._beats(analysis, beat_lead, self.beats, af_seconds)
            latency["inference_beats"] = (time.perf_counter() - t0) * 1000
        analysis.strip = _excerpt(reference, lead.name, classes)
        analysis.rhythm_model = self.rhythm.name if self.rhythm else ""
        analysis.beats_model = self.beats.name if self.beats else ""
        analysis.rhythm_engine = self.rhythm.selection.engine.name if self.rhythm else ""
        analysis.beats_engine = self.beats.selection.engine.name if self.beats else ""
        latency["total"] = (time.perf_counter() - started) * 1000
        return analysis

    @staticmethod
    def _rhythm(analysis: EcgAnalysis, lead: PreparedLead, model: EcgModel) -> np.ndarray:
        """The strip's rhythm on `analysis`; returns each second's class index."""
        classes = model.card.classes
        probs, called = rhythm_by_second(lead.cleaned, lead.rate_hz, model.spec.strip_s,
                                         lambda strips: model.infer({"strip": strips}))
        analysis.rhythm_probs = {c: round(float(p), 4) for c, p in
                                 zip(classes, probs.mean(axis=0), strict=True)}
        analysis.rhythm_seconds = {c: int(np.sum(called == i)) for i, c in enumerate(classes)}
        return called

    @staticmethod
    def _beats(analysis: EcgAnalysis, lead: PreparedLead, model: EcgModel,
               af_seconds: np.ndarray | None) -> np.ndarray:
        """Each beat's class index (counts on `analysis`); `af_seconds`, per second,
        whether the rhythm model calls it AF (None without a rhythm model)."""
        spec, classes = model.spec, model.card.classes
        if len(lead.peaks) == 0:
            return np.zeros(0, dtype=np.int64)
        inputs = beat_inputs(lead.cleaned, lead.peaks, lead.rate_hz, spec)
        calls = np.concatenate([
            model.infer({name: rows[i:i + 4096] for name, rows in inputs.items()}).argmax(1)
            for i in range(0, len(lead.peaks), 4096)])
        timing = model.card.raw.get("supraventricular")
        if timing:
            calls = by_timing(calls, lead.peaks, lead.rate_hz, classes,
                              TimingRule.from_card(timing), spec.template_beats, af_seconds)
        analysis.beat_counts = {c: int(np.sum(calls == i)) for i, c in enumerate(classes)}
        return calls


def _excerpt(lead: PreparedLead, name: str, calls: np.ndarray | None,
             classes: tuple[str, ...] = ("N", "S", "V", "F", "Q")) -> Strip:
    """`STRIP_SECONDS` of the cleaned lead: where the most abnormal beats are, else the
    start."""
    width = int(STRIP_SECONDS * lead.rate_hz)
    start = 0
    if calls is not None and len(calls) and len(lead.cleaned) > width:
        abnormal = lead.peaks[calls != 0]
        if len(abnormal):
            counts = [np.sum((abnormal >= p) & (abnormal < p + width)) for p in abnormal]
            start = int(max(0, min(abnormal[int(np.argmax(counts))] - lead.rate_hz,
                                   len(lead.cleaned) - width)))
    inside = (lead.peaks >= start) & (lead.peaks < start + width)
    labels = tuple(classes[int(c)] for c in calls[inside]) if calls is not None and \
        len(calls) == len(lead.peaks) else tuple("" for _ in range(int(inside.sum())))
    return Strip(lead.cleaned[start:start + width].astype(np.float32), lead.rate_hz,
                 lead.peaks[inside] - start, labels, name, start / lead.rate_hz)


def load_analyzer(cache_dir: Path, models_dir: Path | None = None) -> EcgAnalyzer | None:
    """The ECG models found beside the others, each on the engine the gate allows; None
    when neither is installed."""
    from engines.card import MODELS_DIR, load_card
    from engines.select import select_engine

    folder = models_dir or MODELS_DIR
    models: dict[str, EcgModel] = {}
    for kind in ("ecg_rhythm", "ecg_beats"):
        if not (folder / kind / "card.json").exists():
            continue
        card = load_card(folder / kind)
        models[kind] = EcgModel(card, select_engine(card, cache_dir))
        log.info("ECG model %s on %s", kind, models[kind].selection.summary())
    if not models:
        return None
    return EcgAnalyzer(models.get("ecg_rhythm"), models.get("ecg_beats"))


def load_ecg(cache_dir: Path) -> EcgAnalyzer | None:
    """`load_analyzer`, and the QRS detector imported on a background thread so the first
    recording does not wait for it. A broken ECG model is logged; the app runs without
    ECG analysis rather than not at all."""
    import threading

    from app.ecg.preprocess import warm

    try:
        analyzer = load_analyzer(cache_dir)
    except Exception:  # the T2D banner must not depend on the ECG models
        log.exception("ECG models not loaded; recordings are stored, not analysed")
        return None
    if analyzer is not None:
        threading.Thread(target=warm, name="clarion-ecg-warm", daemon=True).start()
    return analyzer
