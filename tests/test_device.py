"""Every model family and every scoring path keeps its tensors on the device asked for (issue 21).

No GPU here: the `meta` device stands in for one. A model moved there computes shapes only, and `SameDevice`
(a dispatch mode) checks that every op's tensor inputs sit on one device (CPU 0-dim scalars aside, which
CUDA allows too): meta alone misses some mixes (an einsum of a meta and a CPU tensor passes), the mode
does not. Copies back to the CPU (`.cpu()`, where each scoring path ends) return seeded random numbers of
the right shape, so the CPU-side scoring after them runs as it would. The bug it catches: a CUDA
EpsGaussian (buffers only, no parameters) was sent CPU inputs by the scorers, and `adlib evaluate --device
cuda` crashed in its forward.
"""
import shutil

import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from adlib.models import PRESETS, build_model

COPIES = {"aten::_to_copy", "aten::copy_", "aten::_copy_from", "aten::_copy_from_and_resize", "aten::lift_fresh",
          "aten::lift_fresh_copy", "aten::to"}
TINY = {"mlp": dict(hidden=16, depth=1), "mlp-pos": dict(hidden=16, depth=1), "conv": dict(hidden=16, depth=1),
        "unet": dict(widths=(32, 32)), "dit": dict(hidden=16, depth=1, heads=2), "gaussian": {},
        "gaussian+mlp": dict(residual_kwargs=dict(hidden=16, depth=1)),
        "gaussian+conv": dict(residual_kwargs=dict(hidden=16, depth=1)),
        "gaussian+dit": dict(residual_kwargs=dict(hidden=16, depth=1, heads=2))}
FAMILIES = [p for p in PRESETS if p != "dit-paper"]
C, GRID = 192, 8  # lite0 channels; 128 px images


class SameDevice(TorchDispatchMode):
    """Fail any op whose tensor inputs are on two devices; meta -> CPU copies give seeded random numbers."""

    def __init__(self):
        super().__init__()
        self.gen, self.meta_ops = torch.Generator().manual_seed(0), 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name
        tensors = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        if name in COPIES:
            to = kwargs.get("device")
            if name == "aten::_to_copy" and tensors[0].is_meta and to is not None and torch.device(to).type == "cpu":
                dtype = kwargs.get("dtype") or tensors[0].dtype
                x = torch.rand(tensors[0].shape, generator=self.gen)
                return x.to(dtype) if dtype.is_floating_point else (x > 0.5).to(dtype)
            return func(*args, **kwargs)
        devices = {t.device for t in tensors if not (t.device.type == "cpu" and t.dim() == 0)}
        assert len(devices) <= 1, f"{name} mixes devices {sorted(map(str, devices))}"
        if any(t.is_meta for t in tensors):
            self.meta_ops += 1
            if name == "aten::_local_scalar_dense":
                return 0.5
        return func(*args, **kwargs)


def on_meta(module) -> bool:
    return all(t.is_meta for t in [*module.parameters(), *module.buffers()])


def test_the_check_catches_a_tensor_left_behind():
    a, b = torch.ones(2, 3, device="meta"), torch.ones(2, 3)
    torch.einsum("ij,ij->i", a, b)  # meta alone lets this mix through ...
    with pytest.raises(AssertionError, match="mixes devices"), SameDevice():
        torch.einsum("ij,ij->i", a, b)  # ... the mode does not
    with SameDevice() as mode:
        out = (a * torch.tensor(2.0)).sum(1).cpu()  # a CPU scalar is allowed, and the copy back is numbers
    assert out.shape == (2,) and mode.meta_ops >= 2


def _model(name):
    torch.manual_seed(0)
    model = build_model(name, C, GRID, **TINY.get(name, {}))  # a preset not listed here: its own sizes
    if hasattr(model, "fit_base"):
        model.fit_base(torch.randn(12, C, GRID, GRID))
    return model.eval()


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_runs_on_its_device(name):
    """Forward on meta: every buffer (a Gaussian's statistics, positional embeddings) moved with the model; a
    CPU input is refused, as CUDA refuses it."""
    from adlib.evaluation.scorers import invad_scorer, model_device
    model = _model(name).to("meta")
    assert on_meta(model) and model_device(model).type == "meta"
    x, t = torch.randn(3, C, GRID, GRID, device="meta"), torch.full((3,), 10, device="meta")
    with SameDevice() as mode:
        assert model(x, t).shape == x.shape
    assert mode.meta_ops > 0
    with pytest.raises((AssertionError, RuntimeError)), SameDevice():
        model(x.new_empty(x.shape, device="cpu").normal_(), t.cpu())
    z = torch.randn(6, C, GRID, GRID)  # the scorer takes CPU features and must send them to the model's device
    with SameDevice():
        out = invad_scorer(model, 2, "paper", z[:4], batch_size=4)(z)
    assert out["map"].shape == (6, GRID, GRID) and out["map"].device.type == "cpu"


@pytest.fixture()
def meta_device(monkeypatch, tmp_path):
    """Run(..., device="meta") allowed, and a private feature cache (meta features are random numbers)."""
    import adlib.runs.run as run_mod
    real = run_mod.pick_device
    monkeypatch.setattr(run_mod, "pick_device", lambda d: "meta" if d == "meta" else real(d))
    monkeypatch.setenv("ADLIB_CACHE", str(tmp_path / "meta-cache"))


def _run_with(tiny_run, name, tmp_path):
    """A copy of conftest's tiny run (128 px, lite0) whose weights are a tiny model of family `name`."""
    path = tmp_path / name.replace("+", "-")
    shutil.copytree(tiny_run.path, path, ignore=shutil.ignore_patterns("ema", "model", "snapshots"))
    _model(name).save_pretrained(path / "ema")
    return path


@pytest.mark.parametrize("name", FAMILIES)
def test_a_loaded_run_sits_on_the_device_asked(name, tiny_run, meta_device, tmp_path):
    from adlib.evaluation.scorers import invad_scorer
    from adlib.runs.run import Run
    run = Run(_run_with(tiny_run, name, tmp_path), device="meta")
    assert on_meta(run.model) and run.precision == "fp32"
    z = torch.randn(5, C, GRID, GRID)
    with SameDevice():
        s = run.scores(z)
        x, states = run.invert(z, trajectory=True)
        out = invad_scorer(run.model, 3, "paper", z)(z)
    assert s["map"].shape == out["map"].shape == (5, GRID, GRID) and len(states) == 4
    assert x.device.type == "cpu" and len(s["nll"]) == 5


@pytest.mark.parametrize("name", ["gaussian", "gaussian+dit"])
def test_evaluate_predict_and_export_scorer_on_the_device(name, tiny_run, mini, meta_device, tmp_path):
    """The whole commands' paths: evaluate (features, calibration, scorer, end-to-end timing), predict's
    TorchEngine and the export's TorchScorer, with the backbone on the device too."""
    from adlib.data import load_spec
    from adlib.deploy.export import TorchScorer
    from adlib.deploy.predict import Predictor
    from adlib.evaluation.evaluate import evaluate_run
    from adlib.runs.run import Run
    run = Run(_run_with(tiny_run, name, tmp_path), device="meta")
    data = load_spec(str(mini), run.cfg.split_seed)
    with SameDevice() as mode:
        report = evaluate_run(run, data, n_timing=4, batch_size=4)
        assert on_meta(run.extractor)
        rows = Predictor(run).batch([s.path for s in data.test[:3]])
        scored = TorchScorer(run)(torch.rand(2, 3, 128, 128))
    assert report["methods"][0]["device"] == "meta" and len(rows) == 3 and scored["map"].shape == (2, GRID, GRID)
    assert mode.meta_ops > 100


# ---------------------------------------------------------------- precision, cache keys, DiT attention, options

def test_one_rule_for_precision():
    from adlib.errors import AdlibError
    from adlib.method.precision import autocast, resolve_precision
    assert resolve_precision(None, "cuda") == "bf16" and resolve_precision(None, "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("fp32", torch.device("cuda")) == "fp32"
    with pytest.raises(AdlibError, match="--precision"):
        resolve_precision("fp16", "cpu")
    w = torch.randn(4, 4)
    with autocast("cpu", "bf16"):
        assert (w @ w).dtype == torch.bfloat16
    with autocast("cpu", "fp32"):
        assert (w @ w).dtype == torch.float32


def test_gaussian_products_stay_fp32_under_bf16_autocast():
    model, x = _model("gaussian"), torch.randn(2, C, GRID, GRID)
    t = torch.tensor([300, 300])
    with torch.autocast("cpu", torch.bfloat16):
        out, plain = model(x, t), torch.einsum("pck,bkp->bcp", model.eigvec, x.flatten(2))
    assert plain.dtype == torch.bfloat16  # what autocast would do to the C x C products ...
    assert out.dtype == torch.float32 and torch.equal(out, model(x, t))  # ... and does not


def test_bf16_features_are_cached_apart_and_fp32_keys_unchanged():
    import hashlib
    from adlib.features.cache import FEATURE_VERSION, _entry
    ex = type("Ex", (), {"backbone": "lite0", "image_size": 256})()
    old = hashlib.sha256(f"v{FEATURE_VERSION}|abc|lite0|256|lite0|None".encode()).hexdigest()
    assert _entry("abc", ex, None).stem == old == _entry("abc", ex, None, "fp32").stem
    assert _entry("abc", ex, None, "bf16").stem != old


def test_bf16_scoring_on_the_cpu_is_close_not_identical(tiny_run):
    from adlib.runs.run import Run
    z = torch.randn(6, C, GRID, GRID)
    fp32, bf16 = Run(tiny_run.path).scores(z), Run(tiny_run.path, precision="bf16").scores(z)
    assert not torch.equal(fp32["map"], bf16["map"])  # autocast reached the eps-network
    assert torch.corrcoef(torch.stack([fp32["map"].flatten(), bf16["map"].flatten()]))[0, 1] > 0.99


def test_old_attention_checkpoints_load_and_agree(tmp_path):
    """DiT blocks use F.scaled_dot_product_attention now; a checkpoint of nn.MultiheadAttention blocks (same
    keys) loads and gives the same eps."""
    from adlib.models import EpsDiT, load_model

    class OldAttention(torch.nn.MultiheadAttention):
        def forward(self, h):
            return super().forward(h, h, h, need_weights=False)[0]
    torch.manual_seed(0)
    old = EpsDiT(channels=8, hidden=16, depth=2, heads=2, grid=4)
    for block in old.blocks:
        block.attn = OldAttention(16, 2, batch_first=True)
    for p in old.parameters():  # no zero-initialised layer left: the attention must matter
        torch.nn.init.normal_(p, std=0.3)
    old.save_pretrained(tmp_path / "old")
    new = load_model(tmp_path / "old").eval()
    x, t = torch.randn(3, 8, 4, 4), torch.tensor([0, 400, 900])
    assert type(new.blocks[0].attn).__name__ == "SelfAttention"
    torch.testing.assert_close(new(x, t), old.eval()(x, t), rtol=1e-5, atol=1e-5)


def test_grad_checkpointing_is_an_option():
    import argparse
    from adlib.cli.common import config_from_args, train_options
    p = argparse.ArgumentParser()
    train_options(p)
    parse = lambda *argv: config_from_args(p.parse_args(["--out", "x", *argv]))
    assert parse().grad_checkpointing is False and parse("--grad-checkpointing").grad_checkpointing is True
    assert parse("--recipe", "paper").grad_checkpointing == "auto"  # resolved from memory at training time
    assert parse("--recipe", "paper", "--no-grad-checkpointing").grad_checkpointing is False
