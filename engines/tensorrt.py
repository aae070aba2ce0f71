"""TensorRT engine for NVIDIA workstations — written to the documented API, never run here.

TensorRT cannot be installed on this project's machines (DESIGN.md), so this module has
only ever run against the test double in tests/engines/test_tensorrt.py. Everything around
the TensorRT calls (cache keys, metadata, profile choice, shape buckets, rebuild on a bad
plan, the validation gate, fallback) is plain Python and is tested for real.

API used (TensorRT 10.x/11.x Python API, docs.nvidia.com/deeplearning/tensorrt/latest/
_static/python-api): `Builder.create_network` (STRONGLY_TYPED flag before 11.0; always on
from 11.0), `OnnxParser.parse`, `IBuilderConfig.set_memory_pool_limit(MemoryPoolType.
WORKSPACE, …)`, `create_optimization_profile` / `set_shape`, `create_timing_cache` /
`set_timing_cache`, `build_serialized_network`, `Runtime.deserialize_cuda_engine`,
`IExecutionContext.set_input_shape` / `set_tensor_address` / `execute_async_v3`.
Precision comes from the ONNX file (FP32, FP16-converted, INT8 Q/DQ): no builder flags.
Device memory and streams: cuda-python (`cuda.bindings.runtime`), as NVIDIA's samples do
since TensorRT 10.14.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Engine, EngineInfo, EngineUnavailable
from engines.card import ModelCard, file_sha256
from engines.inputs import INPUT_NAMES

log = logging.getLogger("clarion.engines")

MAX_BATCH = 32  # one patient, or one patient's occlusion batch (< 32 feature groups)
TYPICAL_EVENTS = 256
WORKSPACE_BYTES = 256 * 1024 * 1024
SHAPE_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048)
_NP = {"codes": np.int64, "values": np.float32, "ages": np.float32, "ends": np.int64,
       "static": np.float32}


def import_runtime() -> tuple[Any, Any]:
    """(tensorrt, cuda.bindings.runtime), or EngineUnavailable saying what is missing."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise EngineUnavailable(
            "TensorRT is not installed (pip install 'clarion[tensorrt]' on an NVIDIA "
            f"workstation): {exc}") from exc
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as exc:
        raise EngineUnavailable(f"cuda-python is not installed: {exc}") from exc
    return trt, cudart


def _check(result: Any) -> Any:
    """cuda-python calls return (error, value...): raise on error, return the value(s)."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise RuntimeError(f"CUDA error {error}")
    return values[0] if len(values) == 1 else tuple(values)


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """What the engine cache key and the metadata need to know about the device."""

    name: str
    compute_capability: str  # "8.9"
    driver: str
    cuda_runtime: str


def gpu_info(cudart: Any) -> GpuInfo:
    count = _check(cudart.cudaGetDeviceCount())
    if count < 1:
        raise EngineUnavailable("no CUDA GPU found")
    props = _check(cudart.cudaGetDeviceProperties(0))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(name.strip("\x00"), f"{props.major}.{props.minor}",
                   str(_check(cudart.cudaDriverGetVersion())),
                   str(_check(cudart.cudaRuntimeGetVersion())))


def os_tag() -> str:
    return f"{platform.system().lower()}-{platform.machine().lower()}"


def cache_key(model_sha256: str, trt_version: str, compute_capability: str,
              os_name: str | None = None) -> str:
    """Engines are tied to the model, the TensorRT version, the GPU's compute capability and
    the OS: a plan built for any other combination must not be loaded."""
    os_name = os_name or os_tag()
    cc = compute_capability.replace(".", "")
    return f"{model_sha256[:16]}-trt{trt_version}-sm{cc}-{os_name}"


def bucket_for(events: int) -> int:
    """The padded history length to run (and capture a CUDA graph for)."""
    for size in SHAPE_BUCKETS:
        if events <= size:
            return size
    raise ValueError(f"history of {events} events exceeds the profile maximum "
                     f"{SHAPE_BUCKETS[-1]}")


def profile_shapes(card: ModelCard) -> dict[str, tuple[tuple[int, ...], ...]]:
    """One optimization profile: (min, opt, max) per input — 1 / typical / 2,048 events."""
    static, vocab = len(card.static), len(card.vocabulary)
    events = (1, TYPICAL_EVENTS, card.max_events)
    shapes: dict[str, tuple[tuple[int, ...], ...]] = {
        name: ((1, events[0]), (1, events[1]), (MAX_BATCH, events[2]))
        for name in ("codes", "values", "ages")}
    shapes["ends"] = ((1, vocab), (1, vocab), (MAX_BATCH, vocab))
    shapes["static"] = ((1, static), (1, static), (MAX_BATCH, static))
    return shapes


def nvidia_smi() -> str:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return "nvidia-smi not found"
    try:
        return subprocess.run([exe], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"nvidia-smi failed: {exc}"


class EngineCache:
    """Serialized engines (plans) with a JSON metadata file beside each, and timing caches."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def plan_path(self, card: ModelCard, precision: str, key: str) -> Path:
        return self.root / f"{card.id}-{card.version}-{precision}-{key}.plan"

    def metadata_path(self, plan: Path) -> Path:
        return plan.with_suffix(".json")

    def timing_cache_path(self, key: str) -> Path:
        return self.root / f"timing-{key.split('-', 1)[1]}.cache"

    def write(self, plan: Path, data: bytes, metadata: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = plan.with_suffix(".plan.tmp")
        tmp.write_bytes(data)
        tmp.replace(plan)  # never leave a half-written plan under the real name
        self.metadata_path(plan).write_text(json.dumps(metadata, indent=2))

    def discard(self, plan: Path) -> None:
        plan.unlink(missing_ok=True)
        self.metadata_path(plan).unlink(missing_ok=True)


class TensorRTEngine(Engine):
    """The model on TensorRT. `runtime` injects (tensorrt, cudart) — tests pass a double."""

    name = "tensorrt"

    def __init__(self, card: ModelCard, cache_dir: Path, precision: str = "fp32",
                 runtime: tuple[Any, Any] | None = None, use_cuda_graphs: bool = True) -> None:
        super().__init__(card)
        self.precision = precision
        self.name = f"tensorrt-{precision}"
        self.cache = EngineCache(cache_dir)
        self._runtime = runtime
        self._use_graphs = use_cuda_graphs
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._device: dict[str, int] = {}
        self._graphs: dict[tuple[int, int], Any] = {}
        self.plan: Path | None = None
        self.metadata: dict[str, Any] = {}
        self.built = False

    # -- loading -----------------------------------------------------------------------
    def load(self) -> None:
        trt, cudart = self._runtime or import_runtime()
        self._trt, self._cudart = trt, cudart
        gpu = gpu_info(cudart)
        model = self.card.path(self.precision)
        model_hash = file_sha256(model)
        key = cache_key(model_hash, trt.__version__, gpu.compute_capability)
        plan = self.cache.plan_path(self.card, self.precision, key)
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        engine = None
        if plan.exists():
            engine = runtime.deserialize_cuda_engine(plan.read_bytes())
            if engine is None:
                log.warning("cached TensorRT engine %s failed to deserialize; rebuilding",
                            plan.name)
                self.cache.discard(plan)
        if engine is None:
            data, metadata = self._build(trt, logger, model, model_hash, key, gpu)
            self.cache.write(plan, data, metadata)
            self.built = True
            engine = runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise EngineUnavailable("TensorRT built an engine it cannot deserialize")
        self.plan = plan
        self.metadata = json.loads(self.cache.metadata_path(plan).read_text()) \
            if self.cache.metadata_path(plan).exists() else {}
        self._engine = engine
        self._context = engine.create_execution_context()
        self._stream = _check(cudart.cudaStreamCreate())  # a non-default stream
        self._allocate()

    def _build(self, trt: Any, logger: Any, model: Path, model_hash: str, key: str,
               gpu: GpuInfo) -> tuple[bytes, dict[str, Any]]:
        started = time.perf_counter()
        builder = trt.Builder(logger)
        major = int(str(trt.__version__).split(".")[0])
        flags = 0 if major >= 11 else 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(model.read_bytes()):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise EngineUnavailable(f"TensorRT could not parse {model.name}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        profile = builder.create_optimization_profile()
        shapes = profile_shapes(self.card)
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
        timing_path = self.cache.timing_cache_path(key)
        timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.exists()
                                            else b"")
        config.set_timing_cache(timing, False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineUnavailable("TensorRT failed to build the engine (see its log)")
        self.cache.root.mkdir(parents=True, exist_ok=True)
        timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
        metadata = {
            "model": self.card.id, "model_version": self.card.version,
            "model_file": model.name, "model_sha256": model_hash, "precision": self.precision,
            "cache_key": key, "tensorrt": str(trt.__version__), "cuda_runtime": gpu.cuda_runtime,
            "driver": gpu.driver, "gpu": gpu.name, "compute_capability": gpu.compute_capability,
            "os": os_tag(), "nvidia_smi": nvidia_smi(),
            "build": {"workspace_bytes": WORKSPACE_BYTES, "strongly_typed": True,
                      "profile": {k: [list(s) for s in v] for k, v in shapes.items()},
                      "precision_from": "the ONNX file (no builder precision flags)",
                      "timing_cache": timing_path.name},
            "build_seconds": round(time.perf_counter() - started, 3),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return bytes(serialized), metadata

    def _allocate(self) -> None:
        cudart = self._cudart
        largest = {"codes": (MAX_BATCH, self.card.max_events),
                   "values": (MAX_BATCH, self.card.max_events),
                   "ages": (MAX_BATCH, self.card.max_events),
                   "ends": (MAX_BATCH, len(self.card.vocabulary)),
                   "static": (MAX_BATCH, len(self.card.static)), "risk": (MAX_BATCH, 1)}
        for name, shape in largest.items():
            dtype = _NP.get(name, np.float32)
            size = int(np.prod(shape)) * np.dtype(dtype).itemsize
            self._device[name] = _check(cudart.cudaMalloc(size))
            self._context.set_tensor_address(name, self._device[name])

    # -- inference ---------------------------------------------------------------------
    def infer(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        if self._context is None:
            self.load()
        cudart = self._cudart
        rows, events = batch["codes"].shape
        if rows > MAX_BATCH:
            return np.concatenate([self.infer({k: v[i:i + MAX_BATCH] for k, v in batch.items()})
                                   for i in range(0, rows, MAX_BATCH)])
        padded = self._pad(batch, bucket_for(events))
        kind = cudart.cudaMemcpyKind
        for name in INPUT_NAMES:
            host = np.ascontiguousarray(padded[name])
            self._context.set_input_shape(name, host.shape)
            _check(cudart.cudaMemcpyAsync(self._device[name], host.ctypes.data, host.nbytes,
                                          kind.cudaMemcpyHostToDevice, self._stream))
        self._run((rows, padded["codes"].shape[1]))
        out = np.empty((rows, 1), dtype=np.float32)
        _check(cudart.cudaMemcpyAsync(out.ctypes.data, self._device["risk"], out.nbytes,
                                      kind.cudaMemcpyDeviceToHost, self._stream))
        _check(cudart.cudaStreamSynchronize(self._stream))
        return out.reshape(-1)

    def _pad(self, batch: dict[str, np.ndarray], length: int) -> dict[str, np.ndarray]:
        """Pad histories to the shape bucket; padding lies past every code's end, so risk is
        unchanged."""
        rows, events = batch["codes"].shape
        out = {"ends": batch["ends"], "static": batch["static"]}
        for name in ("codes", "values", "ages"):
            padded = np.zeros((rows, length), dtype=_NP[name])
            padded[:, :events] = batch[name]
            out[name] = padded
        return out

    def _run(self, shape: tuple[int, int]) -> None:
        """execute_async_v3 on our stream; replay a CUDA graph per shape bucket if enabled."""
        cudart = self._cudart
        if not self._use_graphs:
            if not self._context.execute_async_v3(self._stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            return
        graph = self._graphs.get(shape)
        if graph is None:
            # The first run of a shape sets up the context outside of any capture.
            if not self._context.execute_async_v3(self._stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            _check(cudart.cudaStreamBeginCapture(
                self._stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal))
            self._context.execute_async_v3(self._stream)
            captured = _check(cudart.cudaStreamEndCapture(self._stream))
            graph = _check(cudart.cudaGraphInstantiate(captured, 0))
            self._graphs[shape] = graph
            return
        _check(cudart.cudaGraphLaunch(graph, self._stream))

    def describe(self) -> EngineInfo:
        details = {k: str(self.metadata.get(k, "")) for k in (
            "tensorrt", "cuda_runtime", "driver", "gpu", "compute_capability", "cache_key")}
        details["plan"] = str(self.plan or "")
        details["cuda_graphs"] = str(self._use_graphs)
        return EngineInfo(self.name, self.precision, str(self.card.path(self.precision)),
                          details)

    def close(self) -> None:
        if self._runtime is None and not hasattr(self, "_cudart"):
            return
        for pointer in self._device.values():
            self._cudart.cudaFree(pointer)
        self._device.clear()
