"""Inference latency by history length, and feature extraction cold vs cached.

    .venv/bin/pip install -e '.[train]'      # PyTorch for the eager comparison
    .venv/bin/python bench/inference.py

One patient per call (what opening a patient costs), single process, 2 cores: ONNX Runtime
with the app's 2 intra-op threads, PyTorch eager with 1 (its faster setting here).
Engines: ONNX Runtime FP32 (the reference), ONNX Runtime INT8 (Q/DQ), and PyTorch eager
running the same weights (loaded from the ONNX file's initializers) in two forms: the
shipped `T2DNet` (written for ONNX: one ScatterND of 3-wide rows), and the same features
written with seven `scatter_add`s, PyTorch's fastest form measured here. The ratio is
against the faster of the two at each length, so it cannot be raised by slowing PyTorch.
The engines are timed in alternating blocks, so drift on a shared machine hits all alike.
Also the occlusion call for the top factors at its largest (13 rows: the patient and all 12
groups; the app leaves out groups with nothing on record), and AUROC of each on the card's
validation patients. Features: a patient with N stored results in a real SQLite store;
"cold" builds the feature cache entry from the store, "cached" is the incremental refresh
(no new rows) plus encoding, and "open patient" is the whole of what the app does when the
doctor opens the patient (app.scoring.Scorer.score: cached features, the batched call with
the factors' occlusion rows, the factors in words).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import logs  # noqa: E402
from app.features import FeatureCache  # noqa: E402
from app.scoring import Scorer  # noqa: E402
from app.stats import percentile  # noqa: E402
from app.store.db import open_store  # noqa: E402
from engines.card import load_card  # noqa: E402
from engines.inputs import ModelInput, collate  # noqa: E402
from engines.onnxruntime import OnnxRuntimeEngine  # noqa: E402
from engines.validation import auroc, load_validation, score_all  # noqa: E402

LENGTHS = (16, 128, 512, 2048)
# PyTorch eager is faster with one intra-op thread than with two for this model (its ops
# are a few thousand elements; 2,048 events: 0.21 against 0.29 ms here), so it gets one.
# ONNX Runtime keeps the app's setting, two (one measured the same).
EAGER_THREADS = 1
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def timed(fn, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    for _ in range(20):
        fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), percentile(times, 99)


def timed_in_turn(fns: dict[str, Callable[[], object]], runs: int,
                  blocks: int = 10) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of each function over `runs` calls, in `blocks` alternating blocks.

    Alternating shares a shared machine's drift among the engines. Blocks rather than single
    calls, each after a few untimed calls: ONNX Runtime's and PyTorch's thread pools spin
    after each call, and calling them one after the other would time their contention.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(blocks):
        for name, fn in fns.items():
            for _ in range(20):
                fn()
            for _ in range(runs // blocks):
                started = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - started) * 1000)
    return {name: (statistics.median(t), percentile(t, 99)) for name, t in times.items()}


def history(card, n: int, seed: int) -> ModelInput:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    return ModelInput(rng.integers(1, len(card.vocabulary), n).astype(np.int64),
                      rng.normal(0, 1, n).astype(np.float32),
                      np.sort(rng.uniform(0, 10, n)).astype(np.float32),
                      rng.normal(0, 1, len(card.static)).astype(np.float32))


def torch_engines(card) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """PyTorch eager on the ONNX file's weights: the shipped form and the scatter_add form."""
    try:
        import onnx
        import torch
        from onnx import numpy_helper

        from engines.training.model import WINDOW_YEARS, T2DNet
    except ImportError:
        return {}
    torch.set_num_threads(EAGER_THREADS)

    class ScatterAddForm(T2DNet):
        """The same features with one scatter_add per sum (the graph before ScatterND)."""

        def features(self, codes, values, ages, static):  # type: ignore[no-untyped-def]
            batch, events = codes.shape
            valid = ((codes > 0) & (ages >= 0.0) & (ages < WINDOW_YEARS)).to(values.dtype)
            code = codes * valid.to(codes.dtype)
            position = torch.arange(events).expand(batch, events)
            first_at = torch.full((batch, self.vocab_size), events, dtype=codes.dtype
                                  ).scatter_reduce(1, code, position, reduce="amin")
            first = (first_at.gather(1, code) == position).to(values.dtype) * valid
            zero = values.new_zeros(batch, self.vocab_size)
            total = zero.scatter_add(1, code, valid)
            value_sum = zero.scatter_add(1, code, values * valid)
            age_sum = zero.scatter_add(1, code, ages * valid)
            latest = zero.scatter_add(1, code, values * first)
            present = zero.scatter_add(1, code, first)
            since = zero.scatter_add(1, code, ages * first)
            return self.summarize(latest, present, since, total, value_sum, age_sum, static)

    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in onnx.load(str(card.path("fp32"))).graph.initializer}
    engines = {}
    for name, cls in (("eager", T2DNet), ("eager scatter_add", ScatterAddForm)):
        model = cls(len(card.vocabulary), len(card.static))
        state = model.state_dict()
        model.load_state_dict({k: weights.get(k, v) for k, v in state.items()})
        model.eval()

        def infer(batch: dict[str, np.ndarray], model: T2DNet = model) -> np.ndarray:
            with torch.inference_mode():
                out = model(*(torch.from_numpy(batch[k]) for k in ("codes", "values", "ages",
                                                                     "static")))
            return out.numpy().reshape(-1)
        engines[name] = infer
    return engines


def store_patient(card, n: int):  # type: ignore[no-untyped-def]
    """A real SQLite store holding one patient with n results over ten years."""
    from sqlalchemy.orm import Session

    from app.store.models import InboxMessage, ObservationRecord, Patient

    folder = Path(tempfile.mkdtemp())
    engine = open_store(f"sqlite:///{folder / 'bench.db'}")
    rng = np.random.default_rng(n)
    loincs = [("4548-4", "%", 5.8, 0.5), ("2345-7", "mg/dL", 110, 20),
              ("39156-5", "kg/m2", 30, 4), ("8480-6", "mm[Hg]", 130, 15),
              ("8462-4", "mm[Hg]", 80, 10), ("2093-3", "mg/dL", 200, 30)]
    with Session(engine) as session, session.begin():
        patient = Patient(family_name="Bench", given_name="Pat", sex="F",
                          birth_date=datetime(1960, 1, 1).date())
        session.add(patient)
        message = InboxMessage(content_hash="bench", raw=b"", status="processed")
        session.add(message)
        session.flush()
        for i in range(n):
            code, unit, mean, sd = loincs[i % len(loincs)]
            when = NOW - timedelta(days=float(rng.uniform(0, 3650)))
            session.add(ObservationRecord(
                patient_id=patient.id, message_id=message.id, result_key=f"k{i}", code=code,
                coding_system="LOINC", loinc=code, value_type="NM",
                value_num=float(rng.normal(mean, sd)), units=unit, status="F",
                observed_at=when, is_current=True))
        patient_id = patient.id
    return engine, patient_id


def main() -> None:
    logs.load_pseudonym_key(Path(tempfile.mkdtemp()))
    card = load_card("t2d")
    engines = {"ORT FP32": OnnxRuntimeEngine(card, "fp32").infer,
               "ORT INT8": OnnxRuntimeEngine(card, "int8").infer}
    eager = torch_engines(card)
    engines.update(eager)
    if not eager:
        print("PyTorch not installed: the eager columns are missing (pip install -e '.[train]')")
    runs = 2000
    rows = []
    for n in LENGTHS:
        batch = collate([history(card, n, n)])
        occlusion = collate([history(card, n, n + i) for i in range(13)])
        result = timed_in_turn({name: partial(f, batch) for name, f in engines.items()}, runs)
        result_occ = timed_in_turn({name: partial(f, occlusion) for name, f in engines.items()},
                                   runs // 4)
        rows.append((n, result, result_occ))

    def ratios(result: dict[str, tuple[float, float]]) -> str:
        if not eager:
            return "n/a | n/a"
        fastest = min(result[m][0] for m in eager)
        return f"{fastest / result['ORT FP32'][0]:.1f}x | {fastest / result['ORT INT8'][0]:.1f}x"

    names = list(engines)
    head = " | ".join(f"{m} p50 | {m} p99" for m in names)
    for title, index, count in (
            ("Inference, one patient per call", 1, runs),
            ("With top factors at most (patient + 12 occlusion rows, batch of 13)", 2,
             runs // 4)):
        print(f"\n{title} ({count} calls each, engines in alternating blocks), milliseconds\n")
        print(f"| events | {head} | fastest eager / FP32 (p50) | fastest eager / INT8 (p50) |")
        print("|---:|" + "---:|" * (2 * len(names) + 2))
        for row in rows:
            result = row[index]
            cells = " | ".join(f"{result[m][0]:.3f} | {result[m][1]:.3f}" for m in names)
            print(f"| {row[0]} | {cells} | {ratios(result)} |")

    inputs, labels = load_validation(card)
    print(f"\nAUROC on the card's {len(inputs)} validation patients\n")
    print("| engine | AUROC | max abs diff vs FP32 |\n|---|---:|---:|")
    reference = score_all(OnnxRuntimeEngine(card), inputs)
    for name, f in engines.items():
        risks = np.concatenate([f(collate(inputs[i:i + 256])) for i in range(0, len(inputs), 256)])
        print(f"| {name} | {auroc(labels, risks):.4f} | {np.max(np.abs(risks - reference)):.2e} |")

    print("\nFeatures from a real SQLite store, then encode; and opening the patient: "
          "Scorer.score, the app's call (cached features, ORT FP32 with the factors' "
          "occlusion rows, factors in words)\n")
    print("| stored results | cold p50 | cold p99 | cached p50 | cached p99 | "
          "open patient p50 | open patient p99 |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    fp32 = OnnxRuntimeEngine(card)
    for n in LENGTHS:
        engine, patient_id = store_patient(card, n)

        def cold(engine: Engine = engine, patient_id: int = patient_id) -> None:
            FeatureCache(engine).get(patient_id).inputs(card, NOW)

        cache = FeatureCache(engine)
        cache.get(patient_id)

        def cached(cache: FeatureCache = cache, patient_id: int = patient_id) -> None:
            cache.get(patient_id).inputs(card, NOW)

        scorer = Scorer(card, fp32, cache)

        def open_patient(scorer: Scorer = scorer, patient_id: int = patient_id) -> None:
            scorer.score(patient_id, NOW)

        c50, c99 = timed(cold, 50)
        w50, w99 = timed(cached, 300)
        t50, t99 = timed(open_patient, 300)
        print(f"| {n} | {c50:.2f} | {c99:.2f} | {w50:.3f} | {w99:.3f} | {t50:.3f} | {t99:.3f} |")
        engine.dispose()


if __name__ == "__main__":
    main()
