"""Choosing the engine: TensorRT where it can run and passes the gate; else ONNX Runtime
INT8 where it is faster than FP32 and passes the gate; else the FP32 reference.

Every candidate's fate is kept with its reason, for the log and `clarion engines`.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engines.base import Engine, EngineUnavailable
from engines.card import ModelCard
from engines.inputs import ModelInput, collate, example_batches
from engines.onnxruntime import OnnxRuntimeEngine
from engines.validation import GateResult, load_validation, run_gate

log = logging.getLogger("clarion.engines")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One engine considered: whether it is usable, and why (not)."""

    name: str
    usable: bool
    reason: str
    gate: GateResult | None = None
    median_ms: float | None = None


@dataclass
class Selection:
    """The engine chosen and the record of every candidate."""

    engine: Engine
    candidates: list[Candidate] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.engine.name} ({self.engine.precision})"


def _median_ms(engine: Engine, inputs: list[ModelInput], runs: int = 30) -> float:
    if engine.card.is_classifier:  # the shape of one strip's beats, or one strip
        batch = example_batches(engine.card)[1 if engine.card.kind == "ecg_beats" else 0]
    else:
        longest = max(inputs[:64], key=lambda i: len(i.codes))
        batch = collate(engine.card, [longest])
    engine.infer(batch)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        engine.infer(batch)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def select_engine(card: ModelCard, cache_dir: Path, *, allow_tensorrt: bool = True,
                  allow_int8: bool = True,
                  tensorrt_factory: Callable[[], Engine] | None = None,
                  gate_limit: int | None = None) -> Selection:
    """Load the reference, try the others against the gate, return the best usable one."""
    reference = OnnxRuntimeEngine(card, "fp32")
    reference.load()
    validation = load_validation(card)  # read once, used by every comparison
    candidates: list[Candidate] = []
    chosen: Engine = reference

    if allow_tensorrt:
        try:
            if tensorrt_factory is not None:
                trt_engine = tensorrt_factory()
            else:
                from engines.tensorrt import TensorRTEngine

                trt_engine = TensorRTEngine(card, cache_dir / "tensorrt")
            trt_engine.load()
            gate = run_gate(card, reference, trt_engine, gate_limit, validation)
            candidates.append(Candidate(trt_engine.name, gate.passed, gate.reason, gate))
            if gate.passed:
                chosen = trt_engine
            else:
                log.warning("TensorRT refused by the validation gate: %s", gate.reason)
        except EngineUnavailable as exc:
            candidates.append(Candidate("tensorrt", False, str(exc)))
        except Exception as exc:  # a broken GPU stack must never stop the app
            log.warning("TensorRT failed to load: %s", exc)
            candidates.append(Candidate("tensorrt", False, f"failed to load: {exc}"))

    if allow_int8 and chosen is reference:
        try:
            int8 = OnnxRuntimeEngine(card, "int8")
            int8.load()
            gate = run_gate(card, reference, int8, gate_limit, validation)
            fp32_ms = _median_ms(reference, validation[0])
            int8_ms = _median_ms(int8, validation[0])
            faster = int8_ms < fp32_ms
            usable = gate.passed and faster
            reason = gate.reason if not gate.passed else (
                f"{gate.reason}; {int8_ms:.3f} ms vs FP32 {fp32_ms:.3f} ms"
                + ("" if faster else " — not faster, FP32 kept"))
            candidates.append(Candidate(int8.name, usable, reason, gate, int8_ms))
            if usable:
                chosen = int8
        except EngineUnavailable as exc:
            candidates.append(Candidate("onnxruntime-cpu-int8", False, str(exc)))
    candidates.append(Candidate(reference.name, True, "the reference (FP32)"))
    for candidate in candidates:
        log.info("engine %s: %s — %s", candidate.name,
                 "usable" if candidate.usable else "not used", candidate.reason)
    return Selection(chosen, candidates)
