"""The backbone's onnxruntime engine (adlib/features/engine.py): same features as torch fp32 within 1e-4,
chosen by ADLIB_FEATURE_ENGINE (auto | torch | onnx), torch whenever onnxruntime is missing or the call is not plain.
One 64 px Lite0 graph is exported per session into the session's feature cache (~1 s)."""
import builtins
import importlib.util
import warnings

import pytest
import torch

from adlib.errors import AdlibError
from adlib.features import engine as eng
from adlib.features.backbone import FeatureExtractor

pytestmark = pytest.mark.skipif(not eng.onnx_available(), reason="onnxruntime / onnx not installed")


@pytest.fixture(scope="module")
def fx():
    return FeatureExtractor("lite0", 64)


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_onnx_features_equal_torch_within_1e4(fx, images, monkeypatch):
    monkeypatch.delenv(eng.ENV, raising=False)
    ref = fx(images)
    fast = eng.use_engine(FeatureExtractor("lite0", 64), "cpu")
    assert isinstance(fast.engine, eng.OnnxBackbone)  # auto picks onnx on the CPU where installed
    out = fast(images)
    assert fast.engine._session is not None and eng.graph_path(fast).is_file()
    assert out.shape == ref.shape == (2, 192, 4, 4) and out.dtype == torch.float32
    assert float((out - ref).abs().max()) < 1e-4
    assert float((fast(images[:1]) - out[:1]).abs().max()) < 1e-5  # dynamic batch axis, batch-size free


def test_force_torch_by_env_and_by_argument(fx, monkeypatch):
    monkeypatch.setenv(eng.ENV, "torch")
    assert eng.use_engine(fx, "cpu").engine is None
    monkeypatch.setenv(eng.ENV, "onnx")
    assert eng.use_engine(fx, "cpu", engine="torch").engine is None
    assert isinstance(eng.use_engine(fx, "cpu").engine, eng.OnnxBackbone)
    fx.engine = None


def test_cuda_keeps_torch(monkeypatch):
    monkeypatch.delenv(eng.ENV, raising=False)
    assert eng.resolve_engine(None, "cuda") == "torch"
    with pytest.raises(AdlibError, match="CPU only"):
        eng.resolve_engine("onnx", "cuda")


def test_unknown_engine_is_one_line_error(monkeypatch):
    monkeypatch.setenv(eng.ENV, "tensorrt")
    with pytest.raises(AdlibError) as e:
        eng.resolve_engine()
    assert "tensorrt" in str(e.value) and "auto, torch or onnx" in str(e.value) and "\n" not in str(e.value)


def test_missing_onnxruntime_falls_back_to_torch(fx, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    monkeypatch.delenv(eng.ENV, raising=False)
    assert eng.use_engine(fx, "cpu").engine is None
    monkeypatch.setenv(eng.ENV, "onnx")
    with pytest.raises(AdlibError, match="onnxruntime"):
        eng.use_engine(fx, "cpu")


def test_failed_build_warns_and_runs_torch(images, monkeypatch):
    monkeypatch.delenv(eng.ENV, raising=False)
    real_import = builtins.__import__

    def no_ort(name, *a, **k):
        if name == "onnxruntime":
            raise ImportError("no onnxruntime")
        return real_import(name, *a, **k)
    fast = eng.use_engine(FeatureExtractor("lite0", 64), "cpu")
    monkeypatch.setattr(eng, "_SESSIONS", {})
    monkeypatch.setattr(builtins, "__import__", no_ort)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fast(images)
    assert fast.engine.failed and any("torch" in str(w.message) for w in caught)
    assert out.shape == (2, 192, 4, 4)


def test_non_plain_calls_run_torch(fx, images, monkeypatch):
    """bf16 autocast and FLOP counting see the torch module; extraction stays frozen (eval) whatever is asked."""
    monkeypatch.delenv(eng.ENV, raising=False)
    fast = eng.use_engine(FeatureExtractor("lite0", 64), "cpu")
    called = []
    monkeypatch.setattr(eng.OnnxBackbone, "__call__", lambda self, x: called.append(1) or torch.zeros(1))
    with torch.autocast("cpu", torch.bfloat16):
        fast(images[:1])
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fast(images[:1])
    assert not called and counter.get_total_flops() > 0
    fast.train()
    assert not fast.training and not fast.net.training
