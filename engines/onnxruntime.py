"""ONNX Runtime on the CPU: the default engine and the reference for every other."""

from __future__ import annotations

import os

import numpy as np

from engines.base import Engine, EngineInfo, EngineUnavailable
from engines.card import ModelCard


class OnnxRuntimeEngine(Engine):
    """FP32 (the reference) or the INT8 Q/DQ model, on the CPU execution provider."""

    def __init__(self, card: ModelCard, precision: str = "fp32", threads: int | None = None) -> None:
        super().__init__(card)
        if precision not in ("fp32", "int8"):
            raise ValueError(f"precision must be fp32 or int8, not {precision!r}")
        self.precision = precision
        self.name = "onnxruntime-cpu" + ("-int8" if precision == "int8" else "")
        # Scoring one patient is latency-bound and this graph's operators read a few thousand
        # numbers at most: too little to split. One thread was faster than two at every
        # shape measured (1 and 8 patients, 16 to 2,048 events: 5-10 % on 2 cores), and it
        # leaves the other core to the window and the ingest.
        self._threads = threads or 1
        self._session = None

    @property
    def model_path(self) -> str:
        if self.precision not in self.card.files:
            return ""
        return str(self.card.path(self.precision))

    def load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a hard dependency
            raise EngineUnavailable(f"onnxruntime is not installed: {exc}") from exc
        if not self.model_path:
            raise EngineUnavailable(f"{self.card.id} ships no {self.precision} model (its "
                                    "card says why: an INT8 copy that fails the gate at "
                                    "training is not shipped)")
        if not os.path.exists(self.model_path):
            raise EngineUnavailable(f"model file missing: {self.model_path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(self.model_path, options,
                                             providers=["CPUExecutionProvider"])

    def infer(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        if self._session is None:
            self.load()
        assert self._session is not None
        (out,) = self._session.run([self.card.output], batch)
        if self.card.is_classifier:
            return np.asarray(out, dtype=np.float32)  # [B, classes]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def describe(self) -> EngineInfo:
        import onnxruntime as ort

        return EngineInfo(self.name, self.precision, self.model_path, {
            "onnxruntime": ort.__version__, "provider": "CPUExecutionProvider",
            "threads": str(self._threads)})
