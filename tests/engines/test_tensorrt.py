"""The TensorRT engine around its API calls — against a documented-API test double, for
what needs a GPU.

The real TensorRT-RTX builder, parser and validity check run in test_tensorrt_real.py.
Executing an engine needs a GPU TensorRT supports, which neither this machine nor the lent
H200 has; tests/engines/trt_double.py stands in for `tensorrt` (or `tensorrt_rtx`) and
`cuda.bindings.runtime` there, following
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
import sys
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
    trt = trt or FakeTensorRT()
    return TensorRTEngine(card, folder, runtime=(trt.edition(), cudart or FakeCudart()),
                          **kw)  # type: ignore[arg-type]


def _item(card: ModelCard, n: int, seed: int = 0) -> ModelInput:
    rng = np.random.default_rng(seed)
    return ModelInput(rng.integers(1, len(card.vocabulary), n).astype(np.int64),
                      rng.normal(0, 1, n).astype(np.float32),
                      np.sort(rng.uniform(0, 10, n)).astype(np.float32),
                      rng.normal(0, 1, len(card.static)).astype(np.float32))


def test_not_installed_is_a_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)  # None: import raises ImportError
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(EngineUnavailable, match=r"TensorRT is not installed .*"
                       r"clarion\[tensorrt-rtx\].* or .*clarion\[tensorrt\]"):
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
    assert build["targets"] == []  # TensorRT builds for the GPU it sees
    [profile] = build["profiles"]
    assert set(profile) == {"values", "ages", "ends", "static"}  # no unused `codes`
    assert profile["values"] == ((1, 1), (1, 256), (32, 2048))
    assert profile["ends"] == ((1, len(card.vocabulary)), (1, len(card.vocabulary)),
                               (32, len(card.vocabulary)))
    assert profile["static"][2] == (32, len(card.static))
    meta = json.loads(engine.plan.with_suffix(".json").read_text())
    for key in ("tensorrt", "cuda_runtime", "driver", "gpu", "compute_capability",
                "nvidia_smi", "build", "build_seconds", "model_sha256", "built_at"):
        assert key in meta, key
    assert meta["gpu"] == "NVIDIA RTX Test" and meta["compute_capability"] == "8.9"
    assert meta["edition"] == "tensorrt" and meta["targets"] == ["8.9"]
    assert "-trt10.14.1-sm89-" in meta["cache_key"]
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
    keys = {cache_key("ab" * 32, tag, ("8.9",), "linux-x86_64")
            for tag in ("trt10.14.1", "trt11.0.0", "trtrtx1.7.1.116")}
    assert len(keys) == 3  # version and edition both part of the key


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
    assert again.built and "failed to deserialize (" in caplog.text
    assert "Magic tag does not match" in caplog.text  # TensorRT's words, logged
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


# -- TensorRT-RTX on a GPU: only the double can play one (see the module docstring) ---------

def test_rtx_builds_for_its_targets_without_a_timing_cache(card: ModelCard,
                                                           tmp_path: Path) -> None:
    trt = FakeTensorRT(version="1.7.1.116", rtx=True)
    engine = _engine(card, tmp_path, trt)
    engine.load()
    [build] = trt.builds
    assert build["flags"] == 0  # strongly typed is the only kind TensorRT-RTX builds
    assert build["targets"] == [80, 86, 89, 120, 121]
    assert trt.validity_checks == 1  # the header was checked before deserializing
    assert engine.plan is not None and "-trtrtx1.7.1.116-sm80.86.89.120.121-" in engine.plan.name
    meta = json.loads(engine.plan.with_suffix(".json").read_text())
    assert meta["edition"] == "tensorrt-rtx" and meta["build"]["timing_cache"] is None
    assert not list(tmp_path.glob("timing-*"))


def test_rtx_refuses_a_gpu_outside_its_targets_in_its_own_words(card: ModelCard,
                                                                tmp_path: Path) -> None:
    trt = FakeTensorRT(version="1.7.1.116", rtx=True, gpu_cc="9.0")
    engine = _engine(card, tmp_path, trt, cudart=FakeCudart(cc=(9, 0), name=b"NVIDIA H200"))
    with pytest.raises(EngineUnavailable) as refused:
        engine.load()
    assert str(refused.value) == (
        "tensorrt-rtx 1.7.1.116: TensorRT-RTX says this plan cannot run here: needs compute "
        "capability "
        "8.0/8.6/8.9/12.0/12.1; this GPU (NVIDIA H200) is 9.0")
    assert trt.deserialized == 0  # refused on the header, before deserializing
    # The app goes on with ONNX Runtime and says why in `clarion engines`.
    selection = select_engine(card, tmp_path, gate_limit=100, allow_int8=False,
                              tensorrt_factory=lambda: _engine(
                                  card, tmp_path / "trt", trt,
                                  cudart=FakeCudart(cc=(9, 0), name=b"NVIDIA H200")))
    assert selection.engine.name == "onnxruntime-cpu"
    assert "this GPU (NVIDIA H200) is 9.0" in selection.candidates[0].reason


def test_rtx_plan_from_another_version_is_rebuilt(card: ModelCard, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    old = FakeTensorRT(version="1.6.0.0", rtx=True)
    _engine(card, tmp_path, old).build()
    [old_plan] = tmp_path.glob("*.plan")
    new = FakeTensorRT(version="1.7.1.116", rtx=True)
    engine = _engine(card, tmp_path, new)
    # Another version is another key, so the old plan is simply not used; a plan that
    # claims this version but is not (copied in by hand) is caught by the header check.
    new_plan, _ = engine.plan_for(new.edition(), None)
    new_plan.write_bytes(old_plan.read_bytes())
    caplog.set_level(logging.WARNING, logger="clarion.engines")
    engine.load()
    assert engine.built and "built by another TensorRT-RTX version" in caplog.text


def test_rtx_runtime_cache_is_kept_beside_the_plan(card: ModelCard, tmp_path: Path) -> None:
    trt = FakeTensorRT(version="1.7.1.116", rtx=True)
    first = _engine(card, tmp_path, trt)
    first.infer(collate(card, [_item(card, 40)]))
    first.close()
    [cache] = tmp_path.glob("*.sm89.rtxcache")
    assert cache.read_bytes().startswith(b"RTXCACHE 8.9") and b"1x64" in cache.read_bytes()
    again = _engine(card, tmp_path, trt)
    again.load()
    assert not again.built
    [context] = again._engine.contexts
    assert context.runtime_config.cache.kernels == {"1x64"}  # read back: no JIT again


# -- ECG models: the same engine, shapes from the card (engines/inputs.graph_shapes) --------

@pytest.mark.parametrize("graphs", [True, False])
def test_ecg_models_run_through_the_same_engine(tmp_path: Path, graphs: bool) -> None:
    """Beats in any number (a strip's 38, a Holter record's 2,200: split at 1,024 rows, rows
    padded to a power of two) and rhythm windows give ONNX Runtime's class probabilities;
    the CUDA graphs captured stay one per rows bucket."""
    rng = np.random.default_rng(0)
    for model, batches in (
            ("ecg_beats", [{"beat": rng.normal(size=(n, 2, 256)).astype(np.float32),
                            "rr": rng.uniform(0.5, 1.5, (n, 5)).astype(np.float32)}
                           for n in (38, 2200, 40, 1)]),
            ("ecg_rhythm", [{"strip": rng.normal(size=(n, 1, 3000)).astype(np.float32)}
                            for n in (5, 3, 32)])):
        ecg = load_card(model)
        cudart = FakeCudart()
        engine = _engine(ecg, tmp_path / model, cudart=cudart, use_cuda_graphs=graphs)
        reference = OnnxRuntimeEngine(ecg)
        for batch in batches:
            out = engine.infer(batch)
            assert out.shape == (len(next(iter(batch.values()))), len(ecg.classes))
            np.testing.assert_allclose(out, reference.infer(batch), atol=1e-6)
        if graphs and model == "ecg_beats":
            # rows run: 64 (38 and 40 share it), 1024 (twice, then 152 → 256), 1
            assert cudart.graphs_instantiated == 4 and cudart.graph_launches == 2
    engine.close()


def test_ecg_profile_and_a_wrong_shape(tmp_path: Path) -> None:
    trt = FakeTensorRT()
    beats = _engine(load_card("ecg_beats"), tmp_path, trt)
    beats.load()
    [profile] = trt.builds[-1]["profiles"]
    # The shipped beat model reads each beat and its difference from the template (2
    # channels) and five RR ratios.
    assert profile == {"beat": ((1, 2, 256), (64, 2, 256), (1024, 2, 256)),
                       "rr": ((1, 5), (64, 5), (1024, 5))}
    assert beats.metadata["inputs"] == ["beat", "rr"]
    rhythm = _engine(load_card("ecg_rhythm"), tmp_path, trt)
    with pytest.raises(ValueError, match=r"strip of shape \(2, 1, 2999\).*\[batch, 1, 3000\]"):
        rhythm.infer({"strip": np.zeros((2, 1, 2999), dtype=np.float32)})


def test_selection_gates_an_ecg_model_on_tensorrt(tmp_path: Path) -> None:
    ecg = load_card("ecg_rhythm")
    chosen = select_engine(ecg, tmp_path, tensorrt_factory=lambda: _engine(ecg, tmp_path))
    assert chosen.engine.name == "tensorrt-fp32" and chosen.candidates[0].gate is not None
    lossy = FakeTensorRT(noise=0.6)
    refused = select_engine(ecg, tmp_path / "b",
                            tensorrt_factory=lambda: _engine(ecg, tmp_path / "b", lossy))
    assert refused.engine.name == "onnxruntime-cpu"
    reason = refused.candidates[0].reason
    assert not refused.candidates[0].usable and "KL" in reason and "macro-F1" in reason
