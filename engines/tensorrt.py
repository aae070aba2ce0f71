"""TensorRT engine for NVIDIA workstations, on either edition of TensorRT.

- **TensorRT for RTX** (`tensorrt_rtx` 1.x, extra `tensorrt-rtx`): NVIDIA's edition for
  desktop applications on GeForce and RTX PRO GPUs — a doctor's workstation. Its builder
  compiles ahead of time on the CPU (no GPU needed) for the target compute capabilities set
  on the builder config; kernels are compiled just in time on the first run and kept in a
  runtime cache beside the plan; `Runtime.get_engine_validity` reads a plan's header and
  says whether it can run here, and why not, before anything is deserialized. It has no
  timing cache worth keeping (its 1.1 release notes: a timing cache forces a GPU query at
  build time and does not change the engine).
- **TensorRT** (`tensorrt` 10.x/11.x, extra `tensorrt`): builds for the GPU it runs on, with
  a timing cache.

What has run where (README, "TensorRT"): the RTX builder parses and builds every shipped
model file in CI (tests/engines/test_tensorrt_real.py) and its validity check and
deserialization run there and fail as they must without a GPU; on an NVIDIA H200 (compute
capability 9.0, which TensorRT-RTX does not support) the same engine builds, the validity
check refuses the plan in TensorRT's words and the app falls back to ONNX Runtime.
Execution on a GPU (execute_async_v3, CUDA graphs, the runtime cache's contents) has only
run against the documented-API double in tests/engines/trt_double.py.

API used (docs.nvidia.com/deeplearning/tensorrt[-rtx]/latest/_static/python-api):
`Builder.create_network` (STRONGLY_TYPED before TensorRT 11; strongly typed always from 11
and in TensorRT-RTX), `OnnxParser.parse`, `IBuilderConfig.set_memory_pool_limit`,
`num_compute_capabilities` / `set_compute_capability` (RTX), optimization profiles,
`create_timing_cache` / `set_timing_cache` (TensorRT), `build_serialized_network`,
`Runtime.get_engine_validity` (RTX), `deserialize_cuda_engine`, `create_runtime_config` /
`create_runtime_cache` / `set_runtime_cache` (RTX), `create_execution_context`,
`set_input_shape` / `set_tensor_address` / `execute_async_v3`. Precision comes from the
ONNX file (FP32, INT8 Q/DQ): no builder flags. Device memory and streams: cuda-python
(`cuda.bindings.runtime`), as NVIDIA's samples do since TensorRT 10.14.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import Engine, EngineInfo, EngineUnavailable
from engines.card import ModelCard, file_sha256
from engines.inputs import GraphShapes, Tensor, graph_shapes

log = logging.getLogger("clarion.engines")

WORKSPACE_BYTES = 256 * 1024 * 1024
SHAPE_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048)
# TensorRT-RTX targets: the edition's own default set (its documentation, "CPU-Only AOT"),
# named on the builder config so the plan and its metadata say what it runs on. Turing
# (7.5) is left out, as by default; Hopper (9.0, data-centre GPUs) is not an RTX target.
RTX_TARGETS = ("8.0", "8.6", "8.9", "12.0", "12.1")
EDITIONS = {"tensorrt-rtx": "tensorrt_rtx", "tensorrt": "tensorrt"}
_INSTALL = {"tensorrt-rtx": "pip install 'clarion[tensorrt-rtx]' (an RTX workstation)",
            "tensorrt": "pip install 'clarion[tensorrt]' (a data-centre GPU)"}


@dataclass(frozen=True, slots=True)
class Edition:
    """Which TensorRT is installed: the module, and what the cache key calls it."""

    name: str  # "tensorrt-rtx" | "tensorrt"
    trt: Any = field(repr=False)

    @property
    def version(self) -> str:
        return str(self.trt.__version__)

    @property
    def rtx(self) -> bool:
        return self.name == "tensorrt-rtx"

    @property
    def tag(self) -> str:
        return ("trtrtx" if self.rtx else "trt") + self.version


def import_edition(prefer: str | None = None) -> Edition:
    """TensorRT-RTX if installed, else TensorRT (or only `prefer`); EngineUnavailable
    naming the install command if neither is."""
    import importlib

    names = [prefer] if prefer else list(EDITIONS)
    problems = []
    for name in names:
        if name not in EDITIONS:
            raise ValueError(f"unknown TensorRT edition {name!r} (one of {', '.join(EDITIONS)})")
        try:
            return Edition(name, importlib.import_module(EDITIONS[name]))
        except ImportError as exc:
            problems.append(f"{EDITIONS[name]}: {exc}")
    raise EngineUnavailable(
        "TensorRT is not installed (" + " or ".join(_INSTALL[n] for n in names) + "): "
        + "; ".join(problems))


def import_cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError as exc:
        raise EngineUnavailable(f"cuda-python is not installed (pip install 'cuda-python'): "
                                f"{exc}") from exc
    return cudart


def import_runtime(prefer: str | None = None) -> tuple[Edition, Any]:
    """(the TensorRT edition, cuda.bindings.runtime), or EngineUnavailable saying what is
    missing."""
    return import_edition(prefer), import_cudart()


class TrtLog:
    """TensorRT's logger: warnings and errors go to Clarion's log and are kept, so a refusal
    can be explained in TensorRT's own words."""

    def __init__(self, trt: Any) -> None:
        severity = trt.ILogger.Severity
        self._errors = (severity.INTERNAL_ERROR, severity.ERROR)
        self._keep = (*self._errors, severity.WARNING)
        self.messages: list[tuple[str, str]] = []
        outer = self

        class _Logger(trt.ILogger):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, level: Any, message: str) -> None:
                if level in outer._keep:
                    error = level in outer._errors
                    outer.messages.append(("error" if error else "warning", message))
                    log.log(logging.WARNING if error else logging.INFO, "TensorRT: %s",
                            message)

        self.logger = _Logger()

    def mark(self) -> int:
        return len(self.messages)

    def errors_since(self, mark: int) -> str:
        """The errors logged since `mark`, joined, most telling first (TensorRT's own
        text, with its source locations trimmed)."""
        found = [_trim(m) for kind, m in self.messages[mark:] if kind == "error"]
        return "; ".join(dict.fromkeys(found))


def _trim(message: str) -> str:
    """'IRuntime::deserializeCudaEngine: Error Code 1: Cuda Runtime (In X at /_src/…:25
    (cudaError 35: …))' → the words without the build tree's file names."""
    import re

    return re.sub(r"In \w+ at /_src/[^ ]+ ", "", message).strip()


def _error_words(cudart: Any, error: Any) -> str:
    """cudaErrorInsufficientDriver (CUDA driver version is insufficient …)."""
    try:
        name = cudart.cudaGetErrorName(error)[1]
        text = cudart.cudaGetErrorString(error)[1]
        name = name.decode() if isinstance(name, bytes) else str(name)
        text = text.decode() if isinstance(text, bytes) else str(text)
        return f"{name} ({text})"
    except Exception:  # noqa: BLE001 - the number is still worth reporting
        return f"CUDA error {int(error)}"


def _check(result: Any, cudart: Any = None) -> Any:
    """cuda-python calls return (error, value...): raise on error, return the value(s)."""
    error, *values = result if isinstance(result, tuple) else (result,)
    if int(error) != 0:
        raise RuntimeError(_error_words(cudart, error) if cudart is not None
                           else f"CUDA error {error}")
    return values[0] if len(values) == 1 else tuple(values)


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """What the engine cache key and the metadata need to know about the device."""

    name: str
    compute_capability: str  # "8.9"
    driver: str
    cuda_runtime: str


def gpu_info(cudart: Any) -> GpuInfo:
    """The first GPU, or EngineUnavailable in CUDA's words (no driver, no device …)."""
    error, *rest = cudart.cudaGetDeviceCount()
    if int(error) != 0:
        raise EngineUnavailable(f"no usable CUDA GPU: {_error_words(cudart, error)}")
    if rest[0] < 1:
        raise EngineUnavailable("no CUDA GPU found")
    props = _check(cudart.cudaGetDeviceProperties(0), cudart)
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(name.strip("\x00"), f"{props.major}.{props.minor}",
                   str(_check(cudart.cudaDriverGetVersion(), cudart)),
                   str(_check(cudart.cudaRuntimeGetVersion(), cudart)))


def os_tag() -> str:
    return f"{platform.system().lower()}-{platform.machine().lower()}"


def cache_key(model_sha256: str, edition_tag: str, targets: tuple[str, ...],
              os_name: str | None = None) -> str:
    """Plans are tied to the model file, the TensorRT edition and version, the compute
    capabilities they were built for (TensorRT: this GPU's; TensorRT-RTX: its targets) and
    the OS: a plan built for any other combination must not be loaded."""
    os_name = os_name or os_tag()
    sm = "sm" + ".".join(t.replace(".", "") for t in targets)
    return f"{model_sha256[:16]}-{edition_tag}-{sm}-{os_name}"


def bucket_for(events: int, largest: int = SHAPE_BUCKETS[-1]) -> int:
    """The padded length to run (and capture a CUDA graph for): the smallest of
    SHAPE_BUCKETS (then `largest`) that holds `events`."""
    for size in (*(b for b in SHAPE_BUCKETS if b < largest), largest):
        if events <= size:
            return size
    raise ValueError(f"a length of {events} exceeds the profile maximum {largest}")


def rows_bucket(rows: int, max_batch: int) -> int:
    """Rows run as the next power of two (zero rows added, their outputs dropped), so the
    CUDA graphs captured stay few whatever the batch sizes."""
    size = 1
    while size < rows:
        size *= 2
    return min(size, max_batch)


def profile_shapes(card: ModelCard) -> dict[str, tuple[tuple[int, ...], ...]]:
    """One optimization profile: (min, opt, max) per input, from the card's graph shapes
    (engines/inputs.graph_shapes): 1 / typical / largest batch, and along a length that
    varies, 1 / typical / largest (a timeline's 2,048 events)."""
    shapes = graph_shapes(card)
    out: dict[str, tuple[tuple[int, ...], ...]] = {}
    for tensor in shapes.inputs:
        lo, opt = list(tensor.dims), list(tensor.dims)
        if tensor.varies is not None:
            lo[tensor.varies], opt[tensor.varies] = 1, tensor.typical
        out[tensor.name] = ((1, *lo), (shapes.typical_batch, *opt),
                            (shapes.max_batch, *tensor.dims))
    return out


def nvidia_smi() -> str:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return "nvidia-smi not found"
    try:
        return subprocess.run([exe], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"nvidia-smi failed: {exc}"


def invalidity_words(trt: Any, diagnostics: int, targets: tuple[str, ...],
                     gpu: GpuInfo | None) -> list[str]:
    """TensorRT-RTX's EngineInvalidityDiagnostics bits → what an IT person can act on."""
    words = {
        "VERSION_MISMATCH": f"built by another TensorRT-RTX version (this is {trt.__version__})",
        "UNSUPPORTED_CC": (f"needs compute capability {'/'.join(targets)}; this GPU"
                           + (f" ({gpu.name}) is {gpu.compute_capability}" if gpu else " is "
                              "another")),
        "OLD_CUDA_DRIVER": "the NVIDIA driver is too old for this plan: update it",
        "OLD_CUDA_RUNTIME": "the CUDA runtime is too old for this plan",
        "INSUFFICIENT_GPU_MEMORY": "not enough GPU memory",
        "MALFORMED_ENGINE": "the plan file is damaged",
        "CUDA_ERROR": "CUDA reported an error while checking",
    }
    out = []
    for name, member in trt.EngineInvalidityDiagnostics.__members__.items():
        if diagnostics & int(member):
            out.append(words.get(name, name.lower().replace("_", " ")))
    return out


class EngineCache:
    """Serialized engines (plans) with a JSON metadata file beside each; TensorRT's timing
    caches and TensorRT-RTX's runtime caches."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def plan_path(self, card: ModelCard, precision: str, key: str) -> Path:
        return self.root / f"{card.id}-{card.version}-{precision}-{key}.plan"

    def metadata_path(self, plan: Path) -> Path:
        return plan.with_suffix(".json")

    def timing_cache_path(self, key: str) -> Path:
        return self.root / f"timing-{key.split('-', 1)[1]}.cache"

    def runtime_cache_path(self, plan: Path, gpu: GpuInfo) -> Path:
        """JIT-compiled kernels, per plan and GPU (the cache itself checks the rest)."""
        return plan.with_suffix(f".sm{gpu.compute_capability.replace('.', '')}.rtxcache")

    def write(self, plan: Path, data: bytes, metadata: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = plan.with_suffix(".plan.tmp")
        tmp.write_bytes(data)
        tmp.replace(plan)  # never leave a half-written plan under the real name
        self.metadata_path(plan).write_text(json.dumps(metadata, indent=2))

    def discard(self, plan: Path) -> None:
        plan.unlink(missing_ok=True)
        self.metadata_path(plan).unlink(missing_ok=True)
        for cache in plan.parent.glob(plan.stem + ".*.rtxcache"):
            cache.unlink()


class TensorRTEngine(Engine):
    """The model on TensorRT (either edition). `runtime` injects (edition, cudart): tests
    pass the double, or the real `tensorrt_rtx` with no GPU."""

    name = "tensorrt"

    def __init__(self, card: ModelCard, cache_dir: Path, precision: str = "fp32",
                 runtime: tuple[Edition, Any] | None = None, use_cuda_graphs: bool = True,
                 edition: str | None = None,
                 rtx_targets: tuple[str, ...] = RTX_TARGETS) -> None:
        super().__init__(card)
        self.precision = precision
        self.name = f"tensorrt-{precision}"
        self.cache = EngineCache(cache_dir)
        self._runtime = runtime
        self._prefer = edition
        self.rtx_targets = rtx_targets
        self._use_graphs = use_cuda_graphs
        self._engine: Any = None
        self._context: Any = None
        self._runtime_cache: Any = None
        self._runtime_cache_path: Path | None = None
        self._stream: Any = None
        self._device: dict[str, int] = {}
        self._graphs: dict[tuple[tuple[int, ...], ...], Any] = {}
        self._shapes: GraphShapes = graph_shapes(card)
        self.plan: Path | None = None
        self.metadata: dict[str, Any] = {}
        self.built = False

    # -- the edition, the key, the plan ----------------------------------------------
    def edition(self) -> Edition:
        return self._runtime[0] if self._runtime else import_edition(self._prefer)

    def _cudart(self) -> Any:
        return self._runtime[1] if self._runtime else import_cudart()

    def targets(self, edition: Edition, gpu: GpuInfo | None) -> tuple[str, ...]:
        """What the plan is built for: TensorRT-RTX's targets, or TensorRT's one GPU."""
        if edition.rtx:
            return self.rtx_targets
        if gpu is None:
            raise EngineUnavailable("TensorRT (not -RTX) builds only for a GPU it can see")
        return (gpu.compute_capability,)

    def plan_for(self, edition: Edition, gpu: GpuInfo | None) -> tuple[Path, str]:
        model_hash = file_sha256(self.card.path(self.precision))
        key = cache_key(model_hash, edition.tag, self.targets(edition, gpu))
        return self.cache.plan_path(self.card, self.precision, key), key

    def build(self, gpu: GpuInfo | None = None) -> Path:
        """Parse and build the plan if it is not cached; return its path. TensorRT-RTX
        builds ahead of time on the CPU; TensorRT needs `gpu` (the one it builds for)."""
        edition = self.edition()
        plan, key = self.plan_for(edition, gpu)
        if not plan.exists():
            data, metadata = self._build(edition, TrtLog(edition.trt), key, gpu)
            self.cache.write(plan, data, metadata)
            self.built = True
        self._adopt(plan)
        return plan

    def _adopt(self, plan: Path) -> None:
        """This plan is the engine's: keep its path and the metadata written beside it."""
        self.plan = plan
        meta = self.cache.metadata_path(plan)
        self.metadata = json.loads(meta.read_text()) if meta.exists() else {}

    # -- loading -----------------------------------------------------------------------
    def load(self) -> None:
        edition = self.edition()
        try:
            self._load(edition)
        except EngineUnavailable as exc:  # say which TensorRT refused
            raise EngineUnavailable(f"{edition.name} {edition.version}: {exc}") from exc

    def _load(self, edition: Edition) -> None:
        cudart = self._cudart()
        self._edition, self._cudart_mod = edition, cudart
        gpu = gpu_info(cudart)
        trt = edition.trt
        trt_log = TrtLog(trt)
        runtime = trt.Runtime(trt_log.logger)
        plan, key = self.plan_for(edition, gpu)
        engine = None
        if plan.exists():
            engine = self._deserialize(edition, runtime, trt_log, plan.read_bytes(), gpu,
                                       cached=plan)
        if engine is None:
            data, metadata = self._build(edition, trt_log, key, gpu)
            self.cache.write(plan, data, metadata)
            self.built = True
            engine = self._deserialize(edition, runtime, trt_log, data, gpu, cached=None)
        self._adopt(plan)
        self._engine = engine
        self._context = self._create_context(edition, engine, plan, gpu)
        self._stream = _check(cudart.cudaStreamCreate(), cudart)  # a non-default stream
        self._allocate()

    def _deserialize(self, edition: Edition, runtime: Any, trt_log: TrtLog, data: bytes,
                     gpu: GpuInfo, cached: Path | None) -> Any:
        """The engine, or None for a cached plan worth rebuilding (another version, a
        damaged file); EngineUnavailable, in TensorRT's words, when it cannot run here."""
        trt = edition.trt
        mark = trt_log.mark()
        if edition.rtx:
            validity, diagnostics = runtime.get_engine_validity(data)
            if validity == trt.EngineValidity.INVALID:
                words = invalidity_words(trt, int(diagnostics), self.rtx_targets, gpu)
                rebuild = int(diagnostics) & (
                    int(trt.EngineInvalidityDiagnostics.VERSION_MISMATCH)
                    | int(trt.EngineInvalidityDiagnostics.MALFORMED_ENGINE))
                if cached is not None and rebuild:
                    log.warning("cached TensorRT-RTX plan %s is not valid here (%s); "
                                "rebuilding", cached.name, "; ".join(words))
                    self.cache.discard(cached)
                    return None
                said = trt_log.errors_since(mark)
                raise EngineUnavailable(
                    "TensorRT-RTX says this plan cannot run here: "
                    + "; ".join(words + ([said] if said else [])) if words or said else
                    "TensorRT-RTX says this plan cannot run here (no reason given)")
            if validity == trt.EngineValidity.SUBOPTIMAL:
                log.info("TensorRT-RTX: plan %s may run slower on this GPU",
                         (cached or Path("(new)")).name)
        engine = runtime.deserialize_cuda_engine(data)
        if engine is not None:
            return engine
        said = trt_log.errors_since(mark)
        if cached is not None:
            log.warning("cached TensorRT engine %s failed to deserialize (%s); rebuilding",
                        cached.name, said or "no reason given")
            self.cache.discard(cached)
            return None
        raise EngineUnavailable(f"{edition.name} built an engine it cannot deserialize: "
                                f"{said or 'no reason given'}")

    def _create_context(self, edition: Edition, engine: Any, plan: Path, gpu: GpuInfo) -> Any:
        """An execution context; on TensorRT-RTX with the runtime cache of JIT-compiled
        kernels read from beside the plan (written back on close)."""
        if not edition.rtx:
            return engine.create_execution_context()
        config = engine.create_runtime_config()
        cache = config.create_runtime_cache()
        path = self.cache.runtime_cache_path(plan, gpu)
        if path.exists() and not cache.deserialize(path.read_bytes()):
            log.info("TensorRT-RTX runtime cache %s does not match this system; starting "
                     "afresh", path.name)
        config.set_runtime_cache(cache)
        self._runtime_cache, self._runtime_cache_path = cache, path
        return engine.create_execution_context(config)

    def save_runtime_cache(self) -> None:
        """Keep the kernels TensorRT-RTX compiled on this GPU for the next start."""
        if self._runtime_cache is None or self._runtime_cache_path is None:
            return
        data = bytes(self._runtime_cache.serialize())
        tmp = self._runtime_cache_path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(self._runtime_cache_path)

    def _build(self, edition: Edition, trt_log: TrtLog, key: str,
               gpu: GpuInfo | None) -> tuple[bytes, dict[str, Any]]:
        trt = edition.trt
        model = self.card.path(self.precision)
        started = time.perf_counter()
        mark = trt_log.mark()
        builder = trt.Builder(trt_log.logger)
        major = int(edition.version.split(".")[0])
        strongly_typed_flag = not edition.rtx and major < 11
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) \
            if strongly_typed_flag else 0
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, trt_log.logger)
        if not parser.parse(model.read_bytes()):
            errors = "; ".join(_trim(str(parser.get_error(i))) for i in range(parser.num_errors))
            raise EngineUnavailable(f"{edition.name} could not parse {model.name}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        targets = self.targets(edition, gpu)
        if edition.rtx:
            config.num_compute_capabilities = len(targets)
            for i, target in enumerate(targets):
                if not config.set_compute_capability(
                        getattr(trt.ComputeCapability, "SM" + target.replace(".", "")), i):
                    raise EngineUnavailable(f"TensorRT-RTX refused target compute capability "
                                            f"{target}: {trt_log.errors_since(mark)}")
        profile = builder.create_optimization_profile()
        shapes = profile_shapes(self.card)
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
        timing_path = None if edition.rtx else self.cache.timing_cache_path(key)
        if timing_path is not None:
            timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.exists()
                                                else b"")
            config.set_timing_cache(timing, False)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineUnavailable(f"{edition.name} failed to build the engine: "
                                    f"{trt_log.errors_since(mark) or 'no reason given'}")
        self.cache.root.mkdir(parents=True, exist_ok=True)
        if timing_path is not None:
            timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
        inputs = [network.get_input(i).name for i in range(network.num_inputs)]
        metadata = {
            "model": self.card.id, "model_version": self.card.version,
            "model_file": model.name, "model_sha256": file_sha256(model),
            "precision": self.precision, "cache_key": key,
            "edition": edition.name, "tensorrt": edition.version,
            "targets": list(targets), "inputs": inputs,
            "warnings": [m for kind, m in trt_log.messages[mark:] if kind == "warning"],
            "cuda_runtime": gpu.cuda_runtime if gpu else "",
            "driver": gpu.driver if gpu else "",
            "gpu": gpu.name if gpu else "none (built ahead of time on the CPU)",
            "compute_capability": gpu.compute_capability if gpu else "",
            "os": os_tag(), "nvidia_smi": nvidia_smi(),
            "build": {"workspace_bytes": WORKSPACE_BYTES, "strongly_typed": True,
                      "profile": {k: [list(s) for s in v] for k, v in shapes.items()},
                      "precision_from": "the ONNX file (no builder precision flags)",
                      "timing_cache": timing_path.name if timing_path else None},
            "plan_bytes": len(bytes(serialized)),
            "build_seconds": round(time.perf_counter() - started, 3),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return bytes(serialized), metadata

    def _allocate(self) -> None:
        """Device buffers for the largest shapes of the profile, bound once."""
        cudart = self._cudart_mod
        for tensor in (*self._shapes.inputs, self._shapes.output):
            size = self._shapes.max_batch * int(np.prod(tensor.dims)) * \
                np.dtype(tensor.dtype).itemsize
            self._device[tensor.name] = _check(cudart.cudaMalloc(size), cudart)
            self._context.set_tensor_address(tensor.name, self._device[tensor.name])

    # -- inference ---------------------------------------------------------------------
    def infer(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """The card's output for `batch` (a risk per row, or a row of class probabilities):
        split into runs of at most the profile's largest batch, each padded to its shape
        bucket."""
        if self._context is None:
            self.load()
        shapes = self._shapes
        rows = len(batch[shapes.inputs[0].name])
        if rows > shapes.max_batch:
            return np.concatenate([self.infer({k: v[i:i + shapes.max_batch]
                                               for k, v in batch.items()})
                                   for i in range(0, rows, shapes.max_batch)])
        cudart = self._cudart_mod
        kind = cudart.cudaMemcpyKind
        run_shape = []
        for tensor in shapes.inputs:
            host = np.ascontiguousarray(self._pad(tensor, batch[tensor.name],
                                                  rows_bucket(rows, shapes.max_batch)))
            self._context.set_input_shape(tensor.name, host.shape)
            _check(cudart.cudaMemcpyAsync(self._device[tensor.name], host.ctypes.data,
                                          host.nbytes, kind.cudaMemcpyHostToDevice,
                                          self._stream), cudart)
            run_shape.append(host.shape)
        self._run(tuple(run_shape))
        output = shapes.output
        out: np.ndarray = np.empty((rows, *output.dims), dtype=output.dtype)
        _check(cudart.cudaMemcpyAsync(out.ctypes.data, self._device[output.name], out.nbytes,
                                      kind.cudaMemcpyDeviceToHost, self._stream), cudart)
        _check(cudart.cudaStreamSynchronize(self._stream), cudart)
        return out if self.card.is_classifier else out.reshape(-1)

    def _pad(self, tensor: Tensor, array: np.ndarray, rows: int) -> np.ndarray:
        """`array` as the engine runs it: `rows` rows (zero rows added), and along the
        length that may vary, zero padded to its bucket (padding the model does not read:
        events past every code's end). Any other shape than the profile's is an error."""
        dims = list(array.shape[1:])
        if tensor.varies is not None:
            dims[tensor.varies] = bucket_for(array.shape[1 + tensor.varies],
                                             tensor.dims[tensor.varies])
        if len(dims) != len(tensor.dims) or any(
                d != t for i, (d, t) in enumerate(zip(dims, tensor.dims, strict=True))
                if i != tensor.varies):
            raise ValueError(f"{self.card.id}: input {tensor.name} of shape "
                             f"{tuple(array.shape)}; this engine runs [batch, "
                             f"{', '.join(map(str, tensor.dims))}]")
        if array.shape == (rows, *dims):
            return array.astype(tensor.dtype, copy=False)
        padded = np.zeros((rows, *dims), dtype=tensor.dtype)
        padded[tuple(slice(0, n) for n in array.shape)] = array
        return padded

    def _run(self, shape: tuple[tuple[int, ...], ...]) -> None:
        """execute_async_v3 on our stream; replay a CUDA graph per shape bucket if enabled."""
        cudart = self._cudart_mod
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
                self._stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal), cudart)
            self._context.execute_async_v3(self._stream)
            captured = _check(cudart.cudaStreamEndCapture(self._stream), cudart)
            graph = _check(cudart.cudaGraphInstantiate(captured, 0), cudart)
            self._graphs[shape] = graph
            return
        _check(cudart.cudaGraphLaunch(graph, self._stream), cudart)

    def describe(self) -> EngineInfo:
        details = {k: str(self.metadata.get(k, "")) for k in (
            "edition", "tensorrt", "cuda_runtime", "driver", "gpu", "compute_capability",
            "cache_key")}
        details["targets"] = ",".join(self.metadata.get("targets", []))
        details["plan"] = str(self.plan or "")
        details["cuda_graphs"] = str(self._use_graphs)
        return EngineInfo(self.name, self.precision, str(self.card.path(self.precision)),
                          details)

    def close(self) -> None:
        if not hasattr(self, "_cudart_mod"):
            return
        try:
            self.save_runtime_cache()
        except OSError as exc:
            log.warning("could not keep the TensorRT-RTX runtime cache: %s", exc)
        for pointer in self._device.values():
            self._cudart_mod.cudaFree(pointer)
        self._device.clear()
