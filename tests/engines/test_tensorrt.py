"""The TensorRT engine around its API calls — against a documented-API test double.

TensorRT cannot be installed on this project's machines (DESIGN.md); tests/engines/
trt_double.py stands in for `tensorrt` and `cuda.bindings.runtime`, following
https://docs.nvidia.com/deeplearning/tensorrt/latest/_static/python-api/infer/Core/
ExecutionContext.html (set_input_shape, set_tensor_address, execute_async_v3), Builder.html
(create_network, STRONGLY_TYPED, set_memory_pool_limit, optimization profiles, timing
cache, build_serialized_network) and the cuda-python runtime module reference. What is
real here: cache keys and files, metadata, profile shapes, shape buckets and padding,
buffer copies, CUDA-graph bookkeeping, rebuild on a bad plan, the gate and the fallback.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from engines.base import EngineUnavailable
from engines.card import ModelCard, load_card
from engines.inputs import ModelInput, collate
from engines.onnxruntime import OnnxRuntimeEngine
from engines.select import select_engine
from engines.tensorrt import TensorRTEngine, bucket_for, cache_key, import_runtime
from tests.engines.trt_double import FakeCudart, FakeTensorRT


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return load_card("t2d")


def _engine(card: ModelCard, folder: Path, trt: FakeTensorRT | None = None,
            cudart: FakeCudart | None = None, **kw: object) -> TensorRTEngine:
    return TensorRTEngine(card, folder, runtime=(trt or FakeTensorRT(), cudart or FakeCudart()),
                          **kw)  # type: ignore[arg-type]


def _item(card: ModelCard, n: int, seed: int = 0) -> ModelInput:
    rng = np.random.default_rng(seed)
    return ModelInput(rng.integers(1, len(card.vocabulary), n).astype(np.int64),
                      rng.normal(0, 1, n).astype(np.float32),
                      np.sort(rng.uniform(0, 10, n)).astype(np.float32),
                      rng.normal(0, 1, len(card.static)).astype(np.float32))


def test_not_installed_here_is_a_clear_reason() -> None:
    with pytest.raises(EngineUnavailable, match="TensorRT is not installed"):
        import_runtime()


def test_no_gpu_is_refused(card: ModelCard, tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="no CUDA GPU"):
        _engine(card, tmp_path, cudart=FakeCudart(devices=0)).load()


def test_first_load_builds_with_profile_workspace_and_metadata(card: ModelCard,
                                                               tmp_path: Path) -> None:
    trt = FakeTensorRT(version="10.14.1")
    engine = _engine(card, tmp_path, trt)
    engine.load()
    assert engine.built and engine.plan is not None and engine.plan.exists()
    [build] = trt.builds
    assert build["flags"] == 1 << 1  # STRONGLY_TYPED requested explicitly before 11.0
    assert list(build["pool"].values()) == [256 * 1024 * 1024]
    [profile] = build["profiles"]
    assert profile["codes"] == ((1, 1), (1, 256), (32, 2048))
    assert profile["ends"] == ((1, len(card.vocabulary)), (1, len(card.vocabulary)),
                               (32, len(card.vocabulary)))
    assert profile["static"][2] == (32, len(card.static))
    meta = json.loads(engine.plan.with_suffix(".json").read_text())
    for key in ("tensorrt", "cuda_runtime", "driver", "gpu", "compute_capability",
                "nvidia_smi", "build", "build_seconds", "model_sha256", "built_at"):
        assert key in meta, key
    assert meta["gpu"] == "NVIDIA RTX Test" and meta["compute_capability"] == "8.9"
    assert (tmp_path / f"timing-{meta['cache_key'].split('-', 1)[1]}.cache").exists()


def test_tensorrt_11_needs_no_strongly_typed_flag(card: ModelCard, tmp_path: Path) -> None:
    trt = FakeTensorRT(version="11.4.0")
    _engine(card, tmp_path, trt).load()
    assert trt.builds[0]["flags"] == 0


def test_cache_is_reused_and_keyed_by_version_and_gpu(card: ModelCard, tmp_path: Path) -> None:
    trt = FakeTensorRT()
    first = _engine(card, tmp_path, trt)
    first.load()
    again = _engine(card, tmp_path, trt)
    again.load()
    assert not again.built and again.plan == first.plan and len(trt.builds) == 1
    other_gpu = _engine(card, tmp_path, trt, FakeCudart(cc=(9, 0)))
    other_gpu.load()
    assert other_gpu.built and other_gpu.plan != first.plan
    assert "sm90" in str(other_gpu.plan) and "sm89" in str(first.plan)
    assert cache_key("ab" * 32, "10.14.1", "8.9", "linux-x86_64") != \
        cache_key("ab" * 32, "11.0.0", "8.9", "linux-x86_64")


def test_bad_plan_is_rebuilt(card: ModelCard, tmp_path: Path,
                             caplog: pytest.LogCaptureFixture) -> None:
    trt = FakeTensorRT()
    first = _engine(card, tmp_path, trt)
    first.load()
    assert first.plan is not None
    first.plan.write_bytes(b"a plan from another TensorRT version")
    caplog.set_level(logging.WARNING, logger="clarion.engines")
    again = _engine(card, tmp_path, trt)
    again.load()
    assert again.built and "failed to deserialize; rebuilding" in caplog.text
    assert again.plan is not None and again.plan.read_bytes().startswith(b"FAKE-TRT-PLAN")


@pytest.mark.parametrize("graphs", [True, False])
def test_inference_matches_the_reference_across_buckets(card: ModelCard, tmp_path: Path,
                                                       graphs: bool) -> None:
    cudart = FakeCudart()
    engine = _engine(card, tmp_path, cudart=cudart, use_cuda_graphs=graphs)
    reference = OnnxRuntimeEngine(card)
    for n in (1, 16, 17, 300, 2048):
        batch = collate(card, [_item(card, n, seed=n), _item(card, max(1, n // 2), seed=n + 1)])
        np.testing.assert_allclose(engine.infer(batch), reference.infer(batch), atol=1e-6)
    # Buckets run: 16 (n=1 and n=16 share it), 32, 512, 2048. Then 32 again.
    batch = collate(card, [_item(card, 20, 9), _item(card, 5, 10)])
    np.testing.assert_allclose(engine.infer(batch), reference.infer(batch), atol=1e-6)
    if graphs:
        # One graph per shape bucket; repeats (n=16, and the last batch) replay it.
        assert cudart.graphs_instantiated == 4 and cudart.graph_launches == 2
    else:
        assert cudart.graphs_instantiated == 0


def test_buckets() -> None:
    assert [bucket_for(n) for n in (1, 16, 17, 1000, 2048)] == [16, 16, 32, 1024, 2048]
    with pytest.raises(ValueError):
        bucket_for(2049)


def test_selection_uses_tensorrt_when_it_passes(card: ModelCard, tmp_path: Path) -> None:
    selection = select_engine(card, tmp_path, gate_limit=400,
                              tensorrt_factory=lambda: _engine(card, tmp_path / "trt"))
    assert selection.engine.name == "tensorrt-fp32"
    assert selection.candidates[0].usable and selection.candidates[0].gate is not None


def test_selection_refuses_a_lossy_tensorrt_engine(card: ModelCard, tmp_path: Path) -> None:
    lossy = FakeTensorRT(noise=0.2)  # e.g. an FP16 build that lost the model
    selection = select_engine(card, tmp_path, gate_limit=400, allow_int8=False,
                              tensorrt_factory=lambda: _engine(card, tmp_path / "trt", lossy))
    assert selection.engine.name == "onnxruntime-cpu"
    trt = selection.candidates[0]
    assert not trt.usable and "max |difference|" in trt.reason
