"""A test double for what needs a GPU: TensorRT's execution and cuda-python's device.

The real TensorRT-RTX builder, parser and validity check run in
tests/engines/test_tensorrt_real.py; nothing here can execute an engine on this machine
(no GPU) nor on the lent H200 (TensorRT-RTX does not support compute capability 9.0, and
TensorRT proper has no wheel). So execution, CUDA graphs, the runtime cache and a GPU that
passes the validity check are played by this double. Names and signatures follow the
official documentation:
- TensorRT Python API (Builder, OnnxParser, IBuilderConfig, Runtime, ICudaEngine,
  IExecutionContext, ILogger): https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/
  python-api/infer/Core/Builder.html, .../ExecutionContext.html, .../Runtime.html
- TensorRT-RTX's additions (`rtx=True`): IBuilderConfig.num_compute_capabilities /
  set_compute_capability, Runtime.get_engine_validity, ICudaEngine.create_runtime_config,
  IRuntimeConfig.create_runtime_cache / set_runtime_cache, IRuntimeCache.serialize /
  deserialize: https://docs.nvidia.com/deeplearning/tensorrt-rtx/latest/_static/python-api/
- cuda-python runtime bindings (every call returns (cudaError_t, value...)):
  https://nvidia.github.io/cuda-python/cuda-bindings/latest/module/runtime.html

"Device" memory is real host memory (ctypes buffers) and copies are real memmoves, so the
engine's buffer handling is exercised for real; "execution" runs the same ONNX file in
ONNX Runtime, standing in for the GPU kernels. `noise` makes a lossy engine for the gate
(a risk shifted by it; class probabilities mixed with the next class's by it).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import onnxruntime as ort

PLAN_MAGIC = b"FAKE-TRT-PLAN\n"
_DTYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64}


class FakeCudart:
    """cuda.bindings.runtime, the calls the engine makes."""

    class cudaMemcpyKind(IntEnum):  # noqa: N801 - the documented name
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    class cudaStreamCaptureMode(IntEnum):  # noqa: N801
        cudaStreamCaptureModeGlobal = 0

    @dataclass
    class _Props:
        name: bytes
        major: int
        minor: int

    @dataclass
    class Stream:
        capturing: bool = False
        captured: list[Any] = field(default_factory=list)

    def __init__(self, devices: int = 1, cc: tuple[int, int] = (8, 9),
                 name: bytes = b"NVIDIA RTX Test") -> None:
        self.devices, self.cc, self.name = devices, cc, name
        self.buffers: dict[int, ctypes.Array[ctypes.c_char]] = {}
        self.graph_launches = 0
        self.graphs_instantiated = 0

    def cudaGetDeviceCount(self) -> tuple[int, int]:  # noqa: N802
        return 0, self.devices

    def cudaGetDeviceProperties(self, device: int) -> tuple[int, Any]:  # noqa: N802
        return 0, self._Props(self.name + b"\x00", *self.cc)

    def cudaDriverGetVersion(self) -> tuple[int, int]:  # noqa: N802
        return 0, 13000

    def cudaRuntimeGetVersion(self) -> tuple[int, int]:  # noqa: N802
        return 0, 12080

    def cudaStreamCreate(self) -> tuple[int, Any]:  # noqa: N802
        return 0, self.Stream()

    def cudaMalloc(self, size: int) -> tuple[int, int]:  # noqa: N802
        buffer = ctypes.create_string_buffer(size)
        address = ctypes.addressof(buffer)
        self.buffers[address] = buffer
        return 0, address

    def cudaFree(self, pointer: int) -> tuple[int]:  # noqa: N802
        self.buffers.pop(pointer, None)
        return (0,)

    def cudaMemcpyAsync(self, dst: int, src: int, count: int, kind: Any,  # noqa: N802
                        stream: Any) -> tuple[int]:
        ctypes.memmove(dst, src, count)
        return (0,)

    def cudaStreamSynchronize(self, stream: Any) -> tuple[int]:  # noqa: N802
        return (0,)

    def cudaStreamBeginCapture(self, stream: Any, mode: Any) -> tuple[int]:  # noqa: N802
        stream.capturing, stream.captured = True, []
        return (0,)

    def cudaStreamEndCapture(self, stream: Any) -> tuple[int, Any]:  # noqa: N802
        stream.capturing = False
        return 0, list(stream.captured)

    def cudaGraphInstantiate(self, graph: Any, flags: int) -> tuple[int, Any]:  # noqa: N802
        self.graphs_instantiated += 1
        return 0, graph

    def cudaGraphLaunch(self, graph: Any, stream: Any) -> tuple[int]:  # noqa: N802
        self.graph_launches += 1
        for operation in graph:
            operation()
        return (0,)


class _Context:
    """IExecutionContext: set_input_shape, set_tensor_address, execute_async_v3."""

    def __init__(self, engine: _CudaEngine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.executions = 0
        self.runtime_config: _RuntimeConfig | None = None

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def _run(self) -> None:
        self.executions += 1
        inputs = self.engine.session.get_inputs()  # all the network's, in its order
        if self.runtime_config is not None and self.runtime_config.cache is not None:
            self.runtime_config.cache.kernels.add("x".join(map(str, self.shapes[inputs[0].name])))
        feeds = {}
        for tensor in inputs:
            shape, dtype = self.shapes[tensor.name], _DTYPES[tensor.type]
            count = int(np.prod(shape))
            raw = (ctypes.c_char * (count * np.dtype(dtype).itemsize)).from_address(
                self.addresses[tensor.name])
            feeds[tensor.name] = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        [output] = self.engine.session.get_outputs()
        (result,) = self.engine.session.run([output.name], feeds)
        result = result.astype(np.float32)
        if self.engine.noise and result.ndim == 2 and result.shape[1] > 1:
            # class probabilities: mixed with the next class's (a lossy build that blurs
            # the classes together; its rows still sum to 1)
            noise = self.engine.noise
            result = ((1 - noise) * result + noise * np.roll(result, 1, axis=1)).astype(
                np.float32)
        elif self.engine.noise:
            result = np.clip(result + self.engine.noise, 0, 1).astype(np.float32)
        ctypes.memmove(self.addresses[output.name], result.ctypes.data, result.nbytes)

    def execute_async_v3(self, stream_handle: Any) -> bool:
        if getattr(stream_handle, "capturing", False):
            stream_handle.captured.append(self._run)
        else:
            self._run()
        return True


class _RuntimeCache:
    """IRuntimeCache: JIT-compiled kernels; this one records which shapes ran."""

    def __init__(self, cc: str) -> None:
        self.cc, self.kernels = cc, set()

    def serialize(self) -> bytes:
        return (f"RTXCACHE {self.cc}\n" + "\n".join(sorted(self.kernels))).encode()

    def deserialize(self, blob: bytes) -> bool:
        head, *kernels = bytes(blob).decode().split("\n")
        if head != f"RTXCACHE {self.cc}":
            return False  # another GPU: rejected, the cache stays empty
        self.kernels = {k for k in kernels if k}
        return True


class _RuntimeConfig:
    def __init__(self, cc: str) -> None:
        self.cc, self.cache = cc, None

    def create_runtime_cache(self) -> _RuntimeCache:
        return _RuntimeCache(self.cc)

    def set_runtime_cache(self, cache: _RuntimeCache) -> bool:
        self.cache = cache
        return True


class _CudaEngine:
    def __init__(self, onnx_path: str, noise: float, cc: str = "") -> None:
        self.session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        self.noise = noise
        self.cc = cc
        self.contexts: list[_Context] = []

    def create_runtime_config(self) -> _RuntimeConfig:
        return _RuntimeConfig(self.cc)

    def create_execution_context(self, config: _RuntimeConfig | None = None) -> _Context:
        context = _Context(self)
        context.runtime_config = config
        self.contexts.append(context)
        return context


class FakeTensorRT:
    """The `tensorrt` module (or, with `rtx=True`, `tensorrt_rtx`): the classes and enums
    the engine uses. `gpu_cc` is the compute capability the "device" has."""

    class MemoryPoolType(IntEnum):
        WORKSPACE = 0

    class NetworkDefinitionCreationFlag(IntEnum):
        STRONGLY_TYPED = 1  # deprecated and ignored from TensorRT 11.0

    class ILogger:
        class Severity(IntEnum):
            INTERNAL_ERROR = 0
            ERROR = 1
            WARNING = 2
            INFO = 3
            VERBOSE = 4

        def __init__(self) -> None:
            pass

    class ComputeCapability(IntEnum):
        NONE = 0
        CURRENT = 1
        SM75 = 75
        SM80 = 80
        SM86 = 86
        SM89 = 89
        SM120 = 120
        SM121 = 121

    class EngineValidity(IntEnum):
        VALID = 0
        SUBOPTIMAL = 1
        INVALID = 2

    class EngineInvalidityDiagnostics(IntEnum):
        VERSION_MISMATCH = 1
        UNSUPPORTED_CC = 2
        OLD_CUDA_DRIVER = 4
        OLD_CUDA_RUNTIME = 8
        INSUFFICIENT_GPU_MEMORY = 16
        MALFORMED_ENGINE = 32
        CUDA_ERROR = 64

    def __init__(self, version: str = "10.14.1", noise: float = 0.0, rtx: bool = False,
                 gpu_cc: str = "8.9") -> None:
        self.__version__ = version
        self.noise = noise
        self.rtx = rtx
        self.gpu_cc = gpu_cc
        self.builds: list[dict[str, Any]] = []
        self.deserialized = 0
        self.validity_checks = 0
        outer = self
        severity = FakeTensorRT.ILogger.Severity

        class Input:
            def __init__(self, name: str) -> None:
                self.name = name

        class Network:
            def __init__(self, flags: int) -> None:
                self.flags = flags
                self.onnx: bytes = b""
                self.names: list[str] = []

            @property
            def num_inputs(self) -> int:
                return len(self.names)

            def get_input(self, index: int) -> Input:
                return Input(self.names[index])

        class OnnxParser:
            def __init__(self, network: Network, logger: Any) -> None:
                self.network, self.num_errors = network, 0

            def parse(self, model: bytes) -> bool:
                if model[:2] == b"\x00\x00":
                    return False
                self.network.onnx = model
                session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
                self.network.names = [i.name for i in session.get_inputs()]
                return True

            def get_error(self, index: int) -> str:
                return "unsupported"

        class Profile:
            def __init__(self) -> None:
                self.shapes: dict[str, tuple[Any, Any, Any]] = {}

            def set_shape(self, name: str, min: Any, opt: Any, max: Any) -> None:  # noqa: A002
                self.shapes[name] = (tuple(min), tuple(opt), tuple(max))

        class TimingCache:
            def __init__(self, data: bytes) -> None:
                self.data = data or b"timing"

            def serialize(self) -> bytes:
                return self.data

        class Config:
            def __init__(self) -> None:
                self.pool: dict[Any, int] = {}
                self.profiles: list[Profile] = []
                self.timing: TimingCache | None = None
                self.num_compute_capabilities = 0
                self.targets: dict[int, Any] = {}

            def set_compute_capability(self, cc: Any, index: int) -> bool:
                assert outer.rtx, "only TensorRT-RTX has target compute capabilities"
                if not 0 <= index < self.num_compute_capabilities:
                    return False
                self.targets[index] = cc
                return True

            def set_memory_pool_limit(self, pool: Any, size: int) -> None:
                self.pool[pool] = size

            def add_optimization_profile(self, profile: Profile) -> int:
                self.profiles.append(profile)
                return len(self.profiles) - 1

            def create_timing_cache(self, data: bytes) -> TimingCache:
                assert not outer.rtx, "TensorRT-RTX: a timing cache forces a GPU query"
                return TimingCache(data)

            def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
                self.timing = cache
                return True

            def get_timing_cache(self) -> TimingCache:
                assert self.timing is not None
                return self.timing

        class Builder:
            def __init__(self, logger: Any) -> None:
                self.logger = logger

            def create_network(self, flags: int = 0) -> Network:
                return Network(flags)

            def create_builder_config(self) -> Config:
                return Config()

            def create_optimization_profile(self) -> Profile:
                return Profile()

            def build_serialized_network(self, network: Network, config: Config) -> bytes:
                targets = [int(config.targets[i]) for i in range(config.num_compute_capabilities)]
                outer.builds.append({"flags": network.flags, "pool": dict(config.pool),
                                     "profiles": [p.shapes for p in config.profiles],
                                     "targets": targets})
                header = (f"{outer.__version__};" + ",".join(map(str, targets)) + "\n").encode()
                return PLAN_MAGIC + header + network.onnx

        class Runtime:
            def __init__(self, logger: Any) -> None:
                self.logger = logger

            def get_engine_validity(self, plan: bytes) -> tuple[Any, int]:
                assert outer.rtx, "only TensorRT-RTX has get_engine_validity"
                outer.validity_checks += 1
                diag = FakeTensorRT.EngineInvalidityDiagnostics
                if not plan.startswith(PLAN_MAGIC):
                    return FakeTensorRT.EngineValidity.INVALID, int(diag.MALFORMED_ENGINE)
                version, targets = plan[len(PLAN_MAGIC):].split(b"\n", 1)[0].decode().split(";")
                bits = 0
                if version != outer.__version__:
                    bits |= int(diag.VERSION_MISMATCH)
                if outer.gpu_cc.replace(".", "") not in targets.split(","):
                    bits |= int(diag.UNSUPPORTED_CC)
                return (FakeTensorRT.EngineValidity.INVALID if bits
                        else FakeTensorRT.EngineValidity.VALID), bits

            def deserialize_cuda_engine(self, plan: bytes) -> _CudaEngine | None:
                if not plan.startswith(PLAN_MAGIC):
                    # as TensorRT does for a plan from another version/GPU: None, and a log
                    self.logger.log(severity.ERROR, "IRuntime::deserializeCudaEngine: Error "
                                    "Code 1: Serialization (Magic tag does not match)")
                    return None
                outer.deserialized += 1
                import os
                import tempfile
                onnx = plan[len(PLAN_MAGIC):].split(b"\n", 1)[1]
                with tempfile.NamedTemporaryFile(suffix=".onnx", delete=False) as handle:
                    handle.write(onnx)
                try:
                    return _CudaEngine(handle.name, outer.noise, outer.gpu_cc)
                finally:
                    os.unlink(handle.name)

        self.Builder, self.OnnxParser, self.Runtime = Builder, OnnxParser, Runtime

    def edition(self) -> Any:
        """This double as the engine's `Edition` (import here: the double is test code)."""
        from engines.tensorrt import Edition

        return Edition("tensorrt-rtx" if self.rtx else "tensorrt", self)
