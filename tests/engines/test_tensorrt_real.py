"""The real TensorRT-RTX builder and parser on every shipped model file, no GPU needed.

TensorRT for RTX compiles ahead of time on the CPU, so this machine parses each model file
and builds its plan through `TensorRTEngine.build` — the engine's own build path — with the
real `tensorrt_rtx` (pinned in the `tensorrt-rtx` extra, installed by the test extra). A
model file TensorRT cannot parse fails here. What needs a GPU (deserializing for real,
execution) cannot run on this machine: the tests check that it is refused in CUDA's and
TensorRT's own words, and test_tensorrt.py covers the rest against a double.
"""

from __future__ import annotations

import platform
import shutil
from pathlib import Path

import pytest

from engines.base import EngineUnavailable
from engines.card import ModelCard, file_sha256, load_card
from engines.inputs import INPUT_NAMES
from engines.tensorrt import RTX_TARGETS, TensorRTEngine, TrtLog, import_runtime

# TensorRT-RTX publishes wheels for x86-64 Linux and Windows only.
pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"),
    reason=f"TensorRT-RTX has no wheel for {platform.machine()}")

PINNED = "1.7.1.116"


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return load_card("t2d")


@pytest.fixture(scope="module")
def plans(card: ModelCard, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TensorRTEngine]:
    """Every shipped model file, built once for the module."""
    folder = tmp_path_factory.mktemp("plans")
    built = {}
    for precision in sorted(k for k in card.files if k != "validation"):
        engine = TensorRTEngine(card, folder, precision, edition="tensorrt-rtx")
        engine.build()
        built[precision] = engine
    return built


def test_the_pinned_edition_is_installed() -> None:
    edition, cudart = import_runtime("tensorrt-rtx")
    assert edition.name == "tensorrt-rtx" and edition.version == PINNED
    assert cudart.__name__ == "cuda.bindings.runtime"


def test_every_shipped_model_file_parses_and_builds(card: ModelCard,
                                                    plans: dict[str, TensorRTEngine]) -> None:
    assert set(plans) >= {"fp32", "int8"}
    for precision, engine in plans.items():
        assert engine.built and engine.plan is not None
        plan = engine.plan.read_bytes()
        meta = engine.metadata
        model = card.path(precision)
        assert len(plan) == meta["plan_bytes"] > 10_000, precision
        assert meta["edition"] == "tensorrt-rtx" and meta["tensorrt"] == PINNED
        assert meta["targets"] == list(RTX_TARGETS)
        assert meta["model_file"] == model.name and meta["precision"] == precision
        assert meta["model_sha256"] == file_sha256(model) == card.sha256[precision]
        assert meta["gpu"].startswith("none") and meta["build"]["timing_cache"] is None
        # The cache key: this file, this edition and release, these targets, this OS.
        key = meta["cache_key"]
        assert key.startswith(card.sha256[precision][:16] + f"-trtrtx{PINNED}-sm80.86.89.120.121-")
        assert engine.plan.name == f"{card.id}-{card.version}-{precision}-{key}.plan"
        # The graph's inputs are the engines' interface, every one of them read.
        assert meta["inputs"] == list(INPUT_NAMES)
        assert not [w for w in meta["warnings"] if "Unused Input" in w], meta["warnings"]


def test_a_second_build_reuses_the_plan(card: ModelCard, plans: dict[str, TensorRTEngine]) -> None:
    again = TensorRTEngine(card, plans["fp32"].cache.root, "fp32", edition="tensorrt-rtx")
    assert again.build() == plans["fp32"].plan and not again.built


def test_int32_biases_are_refused_by_the_parser_in_its_words(card: ModelCard,
                                                              tmp_path: Path) -> None:
    """ONNX Runtime's default INT8 export (biases quantized to int32) is what TensorRT
    refuses; the shipped INT8 file keeps biases in float (engines/quantize.py)."""
    from engines.inputs import collate
    from engines.quantize import quantize_int8
    from engines.validation import load_validation

    folder = tmp_path / "t2d"
    shutil.copytree(card.directory, folder)
    inputs, _ = load_validation(card)
    calibration = [collate(card, inputs[i:i + 50], 2048) for i in range(0, 200, 50)]
    quantize_int8(card.path("fp32"), folder / card.files["int8"], calibration,
                  keep_fp32=("wide.weight",), float_biases=False)
    engine = TensorRTEngine(load_card(folder), tmp_path / "plans", "int8",
                            edition="tensorrt-rtx")
    with pytest.raises(EngineUnavailable) as refused:
        engine.build()
    message = str(refused.value)
    assert message.startswith("tensorrt-rtx could not parse model.int8.onnx: ")
    assert "input has type Int32 but must have type FP8, FP4, Int4, Int8, or UInt8" in message


def test_loading_without_a_gpu_is_a_clear_refusal(card: ModelCard,
                                                  plans: dict[str, TensorRTEngine]) -> None:
    engine = TensorRTEngine(card, plans["fp32"].cache.root, "fp32", edition="tensorrt-rtx")
    with pytest.raises(EngineUnavailable) as refused:
        engine.load()
    # cuda-python's own words for a machine without an NVIDIA driver.
    assert str(refused.value) == (
        f"tensorrt-rtx {PINNED}: no usable CUDA GPU: cudaErrorInsufficientDriver (CUDA driver "
        "version is insufficient for CUDA runtime version)")


def test_the_real_validity_check_reads_the_plan_header(plans: dict[str, TensorRTEngine]) -> None:
    """get_engine_validity runs for real: without a GPU it cannot read one's compute
    capability and says INVALID, with TensorRT's reason in its log."""
    import tensorrt_rtx as trt

    trt_log = TrtLog(trt)
    runtime = trt.Runtime(trt_log.logger)
    assert plans["fp32"].plan is not None
    validity, _ = runtime.get_engine_validity(plans["fp32"].plan.read_bytes())
    assert validity == trt.EngineValidity.INVALID
    assert "CUDA driver version is insufficient" in trt_log.errors_since(0)
    assert "/_src/" not in trt_log.errors_since(0)  # source paths trimmed

