"""ECG analysis timings: per 30-s strip and per 30-min Holter record, each stage, on the
CPU: ONNX Runtime FP32 and, where it passed its gate, INT8, and the same weights in PyTorch
eager (read back from the FP32 ONNX file; needs the `train` extra). Prints a table (ms).

    .venv/bin/python bench/ecg.py [--strips 60] [--records 4]

Strips and records: MIT-BIH DS2 records, lead MLII at 360 Hz (Moody & Mark 2001;
Goldberger et al. 2000, PhysioNet; ODC-By 1.0), read from ../shared/data/ecg. The goal:
a 30-s strip analysed end to end in under 50 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from app.ecg.analysis import EcgAnalyzer, EcgModel, load_analyzer
from app.ecg.preprocess import prepare, warm
from app.store.waveforms import StoredWaveform
from engines.card import load_card
from engines.onnxruntime import OnnxRuntimeEngine
from engines.select import Candidate, Selection
from engines.signals import beat_inputs, strip_input, strip_windows
from engines.training import ecg_data
from integrations.hl7.parse import parse_message
from integrations.hl7.waveform import Lead, oru_waveform


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def eager(kind: str):  # noqa: ANN201 - a torch module, or None without the train extra
    """The shipped FP32 model under PyTorch eager on the CPU, one thread (as ONNX Runtime's
    sessions here), or None where PyTorch is not installed."""
    try:
        import torch

        from engines.training.ecg_model import shipped
    except ImportError:
        return None
    torch.set_num_threads(1)
    model = shipped(load_card(kind))

    def infer(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return model(*(torch.from_numpy(batch[name]) for name in batch)).numpy()
    return infer


def fixed(kind: str, precision: str) -> EcgModel | None:
    card = load_card(kind)
    if precision not in card.files:
        return None
    engine = OnnxRuntimeEngine(card, precision)
    engine.load()
    return EcgModel(card, Selection(engine, [Candidate(engine.name, True, "bench")]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strips", type=int, default=60)
    parser.add_argument("--records", type=int, default=4)
    args = parser.parse_args()
    warm()
    folder = ecg_data.database("mitdb")
    records = {name: ecg_data.read_record(folder, name, "MLII") for name in ecg_data.DS2}
    rng = np.random.default_rng(0)
    strips = []
    for i in range(args.strips):
        record = records[ecg_data.DS2[i % len(ecg_data.DS2)]]
        start = int(rng.integers(0, len(record.signal) - 30 * 360))
        strips.append(record.signal[start:start + 30 * 360].astype(np.float32))
    holters = [records[name].signal.astype(np.float32) for name in ecg_data.DS2[:args.records]]
    selected = load_analyzer(Path(tempfile.mkdtemp()))
    assert selected is not None
    analyzers = {"FP32": EcgAnalyzer(fixed("ecg_rhythm", "fp32"), fixed("ecg_beats", "fp32")),
                 "INT8 (beats)": EcgAnalyzer(fixed("ecg_rhythm", "fp32"),
                                             fixed("ecg_beats", "int8")),
                 "as selected": selected}
    rows: list[tuple[str, str, list[float], list[float] | None, list[float] | None]] = []
    torch_beats, torch_rhythm = eager("ecg_beats"), eager("ecg_rhythm")

    def timed(fn, inputs, repeat=1):  # noqa: ANN001, ANN202
        out = []
        for x in inputs:
            for _ in range(repeat):
                t0 = time.perf_counter()
                fn(x)
                out.append((time.perf_counter() - t0) * 1000)
        return out

    beats_spec = analyzers["FP32"].beats.spec  # type: ignore[union-attr]
    rhythm_spec = analyzers["FP32"].rhythm.spec  # type: ignore[union-attr]
    for label, signals, repeat in (("30-s strip", strips, 3), ("30-min record", holters, 1)):
        prepared = [prepare(x, 360.0, beats_spec) for x in signals]
        rows.append((label, "parse PCD-01 (HL7 text → mV)", timed(
            lambda x: parse_message(oru_waveform("B1", "B", [("MLII", x)], 360, "20261203"),
                                    "ORU", "R01"), signals[:10], 1), None, None))
        rows.append((label, "filter + QRS (360 Hz)", timed(
            lambda x: prepare(x, 360.0, beats_spec), signals, repeat), None, None))
        rows.append((label, "resample + filter (100 Hz)", timed(
            lambda p: prepare(p.cleaned, 360.0, rhythm_spec, p), prepared, repeat), None, None))
        fp32, int8 = analyzers["FP32"].beats, analyzers["INT8 (beats)"].beats
        batches = [beat_inputs(p.cleaned, p.peaks, 360.0, beats_spec) for p in prepared]
        rows.append((label, "beat model", timed(fp32.infer, batches, repeat),  # type: ignore[union-attr]
                     timed(int8.infer, batches, repeat),  # type: ignore[union-attr]
                     timed(torch_beats, batches, repeat) if torch_beats else None))
        rhythm = analyzers["FP32"].rhythm
        assert rhythm is not None
        rhythm_batches = []
        for p in prepared:
            lead = prepare(p.cleaned, 360.0, rhythm_spec, p)
            seconds = len(lead.cleaned) / 100.0
            window, step = (10.0, 5.0) if seconds <= 120 else (30.0, 15.0)
            spans = strip_windows(lead.cleaned, 100.0, window, step)
            rhythm_batches.append({"strip": np.concatenate(
                [strip_input(lead.cleaned[a:b], 3000) for a, b in spans])})
        rows.append((label, "rhythm model", timed(rhythm.infer, rhythm_batches, repeat), None,
                     timed(torch_rhythm, rhythm_batches, repeat) if torch_rhythm else None))
        waveforms = [StoredWaveform(1, 1, "PCD-01", "ok", None, 360.0, len(x) / 360, (),
                                    (Lead("II", "131330", x),)) for x in signals]
        rows.append((label, "end to end (analyse)", timed(analyzers["FP32"].analyse, waveforms,
                                                          repeat),
                     timed(analyzers["INT8 (beats)"].analyse, waveforms, repeat), None))
        rows.append((label, "end to end, engines as selected", timed(
            selected.analyse, waveforms, repeat), None, None))

    print(f"ECG analysis on the CPU ({os.cpu_count()} cores), ms ({args.strips} strips x 3, "
          f"{args.records} records; ONNX Runtime and PyTorch, 1 thread each)")
    print("| input | stage | ORT FP32 p50 | p99 | ORT INT8 p50 | p99 | INT8/FP32 | "
          "PyTorch eager p50 | p99 | eager/ORT FP32 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, stage, a, b, c in rows:
        cells = [f"{statistics.median(a):.2f}", f"{pct(a, 0.99):.2f}"]
        for other in (b, c):
            if other:
                cells += [f"{statistics.median(other):.2f}", f"{pct(other, 0.99):.2f}",
                          f"{statistics.median(other) / statistics.median(a):.2f}x"]
            else:
                cells += ["—", "—", "—"]
        print(f"| {label} | {stage} | " + " | ".join(cells) + " |")
    if torch_beats is None:
        print("PyTorch eager: not installed (pip install -e '.[train]')")
    for model in selected.models:
        print(f"selected for {model.card.id}: {model.selection.summary()}; " + "; ".join(
            f"{c.name}: {c.reason}" for c in model.selection.candidates if not c.usable))


if __name__ == "__main__":
    main()
