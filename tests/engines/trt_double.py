"""A test double for TensorRT and cuda-python — TensorRT cannot be installed here.

Names and signatures follow the official documentation:
- TensorRT Python API (Builder, OnnxParser, IBuilderConfig, Runtime, ICudaEngine,
  IExecutionContext): https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/
  infer/Core/Builder.html, .../ExecutionContext.html, .../Runtime.html
- cuda-python runtime bindings (every call returns (cudaError_t, value...)):
  https://nvidia.github.io/cuda-python/cuda-bindings/latest/module/runtime.html

"Device" memory is real host memory (ctypes buffers) and copies are real memmoves, so the
engine's buffer handling is exercised for real; "execution" runs the same ONNX file in
ONNX Runtime, standing in for the GPU kernels. `noise` makes a lossy engine for the gate.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import onnxruntime as ort

PLAN_MAGIC = b"FAKE-TRT-PLAN\n"
_DTYPES = {"codes": np.int64, "values": np.float32, "ages": np.float32, "ends": np.int64,
           "static": np.float32, "risk": np.float32}


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

    def __init__(self, devices: int = 1, cc: tuple[int, int] = (8, 9)) -> None:
        self.devices, self.cc = devices, cc
        self.buffers: dict[int, ctypes.Array[ctypes.c_char]] = {}
        self.graph_launches = 0
        self.graphs_instantiated = 0

    def cudaGetDeviceCount(self) -> tuple[int, int]:  # noqa: N802
        return 0, self.devices

    def cudaGetDeviceProperties(self, device: int) -> tuple[int, Any]:  # noqa: N802
        return 0, self._Props(b"NVIDIA RTX Test\x00", *self.cc)

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

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = address
        return True

    def _run(self) -> None:
        self.executions += 1
        feeds = {}
        for name in (i.name for i in self.engine.session.get_inputs()):  # all the network's
            shape = self.shapes[name]
            count = int(np.prod(shape))
            raw = (ctypes.c_char * (count * np.dtype(_DTYPES[name]).itemsize)).from_address(
                self.addresses[name])
            feeds[name] = np.frombuffer(raw, dtype=_DTYPES[name]).reshape(shape).copy()
        (risk,) = self.engine.session.run(["risk"], feeds)
        risk = risk.astype(np.float32)
        if self.engine.noise:
            risk = np.clip(risk + self.engine.noise, 0, 1).astype(np.float32)
        ctypes.memmove(self.addresses["risk"], risk.ctypes.data, risk.nbytes)

    def execute_async_v3(self, stream_handle: Any) -> bool:
        if getattr(stream_handle, "capturing", False):
            stream_handle.captured.append(self._run)
        else:
            self._run()
        return True


class _CudaEngine:
    def __init__(self, onnx_path: str, noise: float) -> None:
        self.session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        self.noise = noise

    def create_execution_context(self) -> _Context:
        return _Context(self)


class FakeTensorRT:
    """The `tensorrt` module: the classes and enums the engine uses."""

    class MemoryPoolType(IntEnum):
        WORKSPACE = 0

    class NetworkDefinitionCreationFlag(IntEnum):
        STRONGLY_TYPED = 1  # deprecated and ignored from TensorRT 11.0

    class Logger:
        WARNING = 2

        def __init__(self, severity: int = 2) -> None:
            self.severity = severity

    def __init__(self, version: str = "10.14.1", noise: float = 0.0) -> None:
        self.__version__ = version
        self.noise = noise
        self.builds: list[dict[str, Any]] = []
        self.deserialized = 0
        outer = self

        class Network:
            def __init__(self, flags: int) -> None:
                self.flags = flags
                self.onnx: bytes = b""

        class OnnxParser:
            def __init__(self, network: Network, logger: Any) -> None:
                self.network, self.num_errors = network, 0

            def parse(self, model: bytes) -> bool:
                self.network.onnx = model
                return model[:2] != b"\x00\x00"

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

            def set_memory_pool_limit(self, pool: Any, size: int) -> None:
                self.pool[pool] = size

            def add_optimization_profile(self, profile: Profile) -> int:
                self.profiles.append(profile)
                return len(self.profiles) - 1

            def create_timing_cache(self, data: bytes) -> TimingCache:
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
                outer.builds.append({"flags": network.flags, "pool": dict(config.pool),
                                     "profiles": [p.shapes for p in config.profiles]})
                return PLAN_MAGIC + network.onnx

        class Runtime:
            def __init__(self, logger: Any) -> None:
                self.logger = logger

            def deserialize_cuda_engine(self, plan: bytes) -> _CudaEngine | None:
                if not plan.startswith(PLAN_MAGIC):
                    return None  # as TensorRT does for a plan from another version/GPU
                outer.deserialized += 1
                import os
                import tempfile
                with tempfile.NamedTemporaryFile(suffix=".onnx", delete=False) as handle:
                    handle.write(plan[len(PLAN_MAGIC):])
                try:
                    return _CudaEngine(handle.name, outer.noise)
                finally:
                    os.unlink(handle.name)

        self.Builder, self.OnnxParser, self.Runtime = Builder, OnnxParser, Runtime
