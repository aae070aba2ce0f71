"""The ECG models on an NVIDIA GPU with PyTorch: eager, and replayed as CUDA graphs. The
shipped FP32 weights (read back from the ONNX files, engines/training/ecg_model.from_onnx),
the batch shapes of a 30-s strip and of a 30-min Holter record as the app runs them (one
batch of beats, one of rhythm windows). Each figure includes the copy of the inputs to
the GPU and of the probabilities back. Prints a table (ms) and says which TensorRT could
run here.

    python3 bench/ecg_gpu.py [--repeat 300]

Needs a CUDA device, torch and onnx (not the app's dependencies: run it where they are,
e.g. the lent H200). The inputs are random numbers of the right shapes: the networks'
arithmetic does not depend on the values.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time

import numpy as np
import torch

from engines.card import load_card
from engines.inputs import graph_shapes
from engines.training.ecg_model import shipped

# (what, beats in one batch, rhythm windows in one batch): a 30-s strip at ~75/min, 10-s
# windows every 5 s; a 30-min record (MIT-BIH's median is ~2,200 beats), 30-s windows
# every 15 s (app/ecg/analysis.py).
SHAPES = (("30-s strip", 38, 5), ("30-min record", 2200, 119))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(fn, repeat: int) -> list[float]:  # noqa: ANN001
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def runners(model: torch.nn.Module, inputs: list[np.ndarray], device: torch.device):  # noqa: ANN201
    """(eager, graph): each copies `inputs` to the GPU, runs the model and copies back."""
    pinned = [torch.from_numpy(x).pin_memory() for x in inputs]

    def eager() -> np.ndarray:
        with torch.inference_mode():
            return model(*(x.to(device, non_blocking=True) for x in pinned)).cpu().numpy()

    static = [x.to(device) for x in pinned]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.inference_mode():
        for _ in range(3):
            model(*static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.inference_mode():
        output = model(*static)

    def replay() -> np.ndarray:
        for target, source in zip(static, pinned, strict=True):
            target.copy_(source, non_blocking=True)
        graph.replay()
        return output.cpu().numpy()
    return eager, replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    cards = {kind: load_card(kind) for kind in ("ecg_beats", "ecg_rhythm")}
    models = {kind: shipped(card).to(device) for kind, card in cards.items()}
    rng = np.random.default_rng(0)
    rows = []
    for what, n_beats, n_windows in SHAPES:
        for name, kind, rows_in in (("beat model", "ecg_beats", n_beats),
                                    ("rhythm model", "ecg_rhythm", n_windows)):
            model = models[kind]
            inputs = [rng.normal(size=(rows_in, *t.dims)).astype(np.float32)
                      for t in graph_shapes(cards[kind]).inputs]
            eager, replay = runners(model, inputs, device)
            assert np.allclose(eager(), replay(), atol=1e-4)
            rows.append((what, name, inputs[0].shape[0], timed(eager, args.repeat),
                         timed(replay, args.repeat)))
    print(f"ECG models on {torch.cuda.get_device_name()} (PyTorch {torch.__version__}, FP32, "
          f"{args.repeat} runs each, ms, inputs copied in and probabilities out)")
    print("| input | model | batch | eager p50 | p99 | CUDA graph p50 | p99 | graph/eager |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for what, name, batch, a, b in rows:
        print(f"| {what} | {name} | {batch} | {statistics.median(a):.3f} | {pct(a, .99):.3f} "
              f"| {statistics.median(b):.3f} | {pct(b, .99):.3f} "
              f"| {statistics.median(b) / statistics.median(a):.2f}x |")
    capability = ".".join(map(str, torch.cuda.get_device_capability()))
    for package in ("tensorrt", "tensorrt_rtx", "tensorrt_cu12", "tensorrt_cu13"):
        found = importlib.util.find_spec(package) is not None
        print(f"python package {package}: {'installed' if found else 'not installed'}")
    print(f"compute capability {capability}: TensorRT-RTX's runtime needs 8.0, 8.6, 8.9 or "
          "12.x, so it cannot execute engines on this GPU; TensorRT Enterprise has no wheel on "
          "PyPI (DESIGN.md)")


if __name__ == "__main__":
    main()
