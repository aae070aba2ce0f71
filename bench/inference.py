"""Inference latency by history length, and feature extraction cold vs cached.

    .venv/bin/pip install -e '.[train]'      # PyTorch for the eager comparison
    .venv/bin/python bench/inference.py

One patient per call (what opening a patient costs), single process, 2 cores: ONNX Runtime
with the app's one intra-op thread, PyTorch eager with one (its faster setting here).
Engines: ONNX Runtime FP32 (the reference), ONNX Runtime INT8 (Q/DQ), and PyTorch eager
running the same weights (loaded from the ONNX file's initializers) in two forms: the
shipped `T2DNet` on the batch every engine reads (code-major, engines/inputs.collate: one
running sum, no scatter), and the same features written with one scatter per sum (a
`scatter_reduce` for each code's latest event, six `scatter_add`s) over the events in their
own order, most recent first (the input that form is fastest on; it was PyTorch's fastest
form of the earlier, scatter-based graph). The ratio is against the faster of the two at
each length, so it cannot be raised by slowing PyTorch.
Engines and lengths are timed in many short alternating blocks, so drift on a shared
machine hits all cells alike.
Also the occlusion call for the top factors at its largest (13 rows: the patient and all 12
groups; the app leaves out groups with nothing on record), and AUROC of each on the card's
validation patients. Features: a patient with N stored results in a real SQLite store;
"cold" builds the feature cache entry from the store, "cached" is the incremental refresh
(no new rows) plus encoding, and "open patient" is the whole of what the app does when the
doctor opens the patient (app.clinic.scoring.Scorer.score: cached features, the batched call with
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
from app.adoption.stats import percentile  # noqa: E402
from app.clinic.features import FeatureCache  # noqa: E402
from app.clinic.scoring import Scorer  # noqa: E402
from app.store.db import open_store  # noqa: E402
from engines.card import ModelCard, load_card  # noqa: E402
from engines.inputs import INPUT_NAMES, ModelInput, collate, read_by_model  # noqa: E402
from engines.onnxruntime import OnnxRuntimeEngine  # noqa: E402
from engines.validation import auroc, load_validation, score_all  # noqa: E402

LENGTHS = (16, 128, 512, 2048)
# PyTorch eager is faster with one intra-op thread than with two for this model (its ops
# are a few thousand elements; 2,048 events: 0.21 against 0.29 ms here), so it gets one.
# ONNX Runtime keeps the app's setting, also one (faster than two for this graph).
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


def timed_in_turn(fns: dict[tuple[str, int], Callable[[], object]], runs: int,
                  blocks: int = 50) -> dict[tuple[str, int], tuple[float, float]]:
    """p50 and p99 (ms) of each function over `runs` calls, in `blocks` alternating blocks.

    Alternating shares a shared machine's drift among the engines; many short blocks share
    it more finely (this virtual machine's speed was seen to change 2x within a minute).
    Each block starts with a few untimed calls, so no engine is timed cold after another.
    """
    times: dict[tuple[str, int], list[float]] = {name: [] for name in fns}
    for _ in range(blocks):
        for name, fn in fns.items():
            for _ in range(5):
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


Batches = dict[str, dict[str, np.ndarray]]  # by layout


def layouts(card: ModelCard, items: list[ModelInput]) -> Batches:
    """The batch the engines read (code-major) and, for the scatter form, the same events
    in their own order (most recent first), padded with code 0."""
    kept = [read_by_model(card, i) for i in items]
    length = max(1, max(int(k.sum()) for k in kept))
    own = {name: np.zeros((len(items), length), dtype=np.int64 if name == "codes" else
                          np.float32) for name in ("codes", "values", "ages")}
    for row, (item, keep) in enumerate(zip(items, kept, strict=True)):
        for name in own:
            own[name][row, :keep.sum()] = getattr(item, name)[keep]
    own["static"] = np.stack([i.static for i in items])
    return {"code-major": collate(card, items), "own order": own}


def torch_engines(card) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """PyTorch eager on the ONNX file's weights: the shipped form and the scatter_add form."""
    try:
        import onnx
        import torch
        from onnx import numpy_helper

        from engines.training.model import T2DNet
    except ImportError:
        return {}
    torch.set_num_threads(EAGER_THREADS)

    class ScatterAddForm(T2DNet):
        """The same features with one scatter_add per sum, over events most recent first
        (padding: code 0, whose column is dropped)."""

        def __init__(self, vocab_size: int, static_size: int) -> None:
            super().__init__(vocab_size, static_size)
            real = torch.ones(vocab_size)
            real[0] = 0.0
            self.register_buffer("real", real, persistent=False)

        def features(self, codes, values, ages, static):  # type: ignore[no-untyped-def,override]
            batch, events = codes.shape
            position = torch.arange(events).expand(batch, events)
            first_at = torch.full((batch, self.vocab_size), events, dtype=codes.dtype
                                  ).scatter_reduce(1, codes, position, reduce="amin")
            first = (first_at.gather(1, codes) == position).to(values.dtype)
            zero = values.new_zeros(batch, self.vocab_size)
            sums = torch.stack([
                zero.scatter_add(1, codes, torch.ones_like(values)),
                zero.scatter_add(1, codes, values), zero.scatter_add(1, codes, ages),
                zero.scatter_add(1, codes, values * first), zero.scatter_add(1, codes, first),
                zero.scatter_add(1, codes, ages * first)]) * self.real
            total, value_sum, age_sum, latest, present, since = sums.unbind(0)
            return self.summarize(latest, present, since, total, value_sum, age_sum, static)

        def forward(self, codes, values, ages, static):  # type: ignore[no-untyped-def,override]
            logit = self.head(self.features(codes, values, ages, static))
            return torch.sigmoid(self.calib_a * logit + self.calib_b).unsqueeze(-1)

    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in onnx.load(str(card.path("fp32"))).graph.initializer}
    engines = {}
    for name, cls, layout, names in (
            ("eager", T2DNet, "code-major", INPUT_NAMES),
            ("eager scatter_add", ScatterAddForm, "own order",
             ("codes", "values", "ages", "static"))):
        model = cls(len(card.vocabulary), len(card.static))
        state = model.state_dict()
        model.load_state_dict({k: weights.get(k, v) for k, v in state.items()})
        model.eval()

        def infer(batches: Batches, model: T2DNet = model,
                  layout: str = layout, names: tuple[str, ...] = names) -> np.ndarray:
            batch = batches[layout]
            with torch.inference_mode():
                out = model(*(torch.from_numpy(batch[k]) for k in names))
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

    def on_code_major(engine: OnnxRuntimeEngine) -> Callable[[Batches], np.ndarray]:
        return lambda batches: engine.infer(batches["code-major"])

    engines = {"ORT FP32": on_code_major(OnnxRuntimeEngine(card, "fp32")),
               "ORT INT8": on_code_major(OnnxRuntimeEngine(card, "int8"))}
    eager = torch_engines(card)
    engines.update(eager)
    if not eager:
        print("PyTorch not installed: the eager columns are missing (pip install -e '.[train]')")
    runs = 2000
    one = {n: layouts(card, [history(card, n, n)]) for n in LENGTHS}
    occluded = {n: layouts(card, [history(card, n, n + i) for i in range(13)]) for n in LENGTHS}
    # Every engine at every length in each block: the machine's drift hits all cells alike.
    tables = [(title, timed_in_turn({(name, n): partial(f, batches[n]) for n in LENGTHS
                                     for name, f in engines.items()}, count), count)
              for title, batches, count in (
                  ("Inference, one patient per call", one, runs),
                  ("With top factors at most (patient + 12 occlusion rows, batch of 13)",
                   occluded, runs // 4))]

    def ratios(result: dict[tuple[str, int], tuple[float, float]], n: int) -> str:
        if not eager:
            return "n/a | n/a"
        fastest = min(result[m, n][0] for m in eager)
        return (f"{fastest / result['ORT FP32', n][0]:.1f}x | "
                f"{fastest / result['ORT INT8', n][0]:.1f}x")

    names = list(engines)
    head = " | ".join(f"{m} p50 | {m} p99" for m in names)
    for title, result, count in tables:
        print(f"\n{title} ({count} calls each, engines and lengths in alternating blocks), "
              "milliseconds\n")
        print(f"| events | {head} | fastest eager / FP32 (p50) | fastest eager / INT8 (p50) |")
        print("|---:|" + "---:|" * (2 * len(names) + 2))
        for n in LENGTHS:
            cells = " | ".join(f"{result[m, n][0]:.3f} | {result[m, n][1]:.3f}" for m in names)
            print(f"| {n} | {cells} | {ratios(result, n)} |")

    inputs, labels = load_validation(card)
    print(f"\nAUROC on the card's {len(inputs)} validation patients\n")
    print("| engine | AUROC | max abs diff vs FP32 |\n|---|---:|---:|")
    reference = score_all(OnnxRuntimeEngine(card), inputs)
    for name, f in engines.items():
        risks = np.concatenate([f(layouts(card, inputs[i:i + 256]))
                                for i in range(0, len(inputs), 256)])
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
