"""INT8 post-training quantization into an ONNX model with Q/DQ nodes.

The format TensorRT's strongly typed networks consume (DESIGN.md): QDQ, QInt8 weights and
activations, symmetric (zero points 0), entropy calibration, and biases left in float.
ONNX Runtime quantizes biases to int32 by default, and TensorRT's parser refuses that
("net.1.bias_DequantizeLinear: input has type Int32 but must have type FP8, FP4, Int4,
Int8, or UInt8"): `QuantizeBias: False`. The same file runs on ONNX Runtime's CPU provider;
tests/engines/test_tensorrt_real.py parses and builds it with the real TensorRT-RTX.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np


class _Reader:
    """Feeds calibration batches to onnxruntime.quantization."""

    def __init__(self, batches: list[dict[str, np.ndarray]]) -> None:
        self._batches: Iterator[dict[str, np.ndarray]] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # pragma: no cover - not used by entropy calibration
        pass


def quantize_int8(fp32_path: Path, int8_path: Path,
                  calibration: list[dict[str, np.ndarray]],
                  keep_fp32: tuple[str, ...] = (), float_biases: bool = True,
                  op_types: tuple[str, ...] = ("MatMul", "Gemm")) -> Path:
    """Write the INT8 Q/DQ model calibrated on `calibration` (collated batches).

    Nodes reading any initializer named in `keep_fp32` stay in FP32 (e.g. a linear path
    over standardized features whose rare large values carry the highest risks: entropy
    calibration clips exactly those). `float_biases=False` gives ONNX Runtime's default, int32
    biases, which TensorRT refuses (kept to show that it does). `op_types`: the operators
    quantized (the T2D model's head only; the ECG networks' convolutions too)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    prepared = int8_path.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    excluded = [n.name for n in onnx.load(str(prepared)).graph.node
                if set(n.input) & set(keep_fp32)]
    try:
        quantize_static(
            str(prepared), str(int8_path), _Reader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Entropy,
            per_channel=False,
            # T2D: only the head is worth INT8; the per-code aggregation is exact counts and
            # sums.
            op_types_to_quantize=list(op_types), nodes_to_exclude=excluded,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                           "QuantizeBias": not float_biases})
    finally:
        prepared.unlink(missing_ok=True)
    return int8_path
