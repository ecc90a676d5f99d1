"""Training: seeded determinism on CPU, resume after an interruption gives the uninterrupted result."""
from pathlib import Path

import pytest
import torch

from adlib.errors import AdlibError
from adlib.runs.config import RunConfig
from adlib.runs.train import CHECKPOINT, fit, lr_lambda
import adlib.runs.train as train_mod

Z = torch.randn(20, 8, 4, 4, generator=torch.Generator().manual_seed(0))


def cfg(**kw):
    base = dict(iters=12, batch_size=4, checkpoint_every=4, model="mlp", model_kwargs=dict(hidden=16, depth=1), device="cpu")
    return RunConfig(**{**base, **kw})


def weights(m):
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_seeded_runs_are_identical(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    raw1, ema1, l1, _ = fit(cfg(), Z, tmp_path / "a", progress=False)
    raw2, ema2, l2, _ = fit(cfg(), Z, tmp_path / "b", progress=False)
    assert l1 == l2 and torch.equal(weights(raw1), weights(raw2)) and torch.equal(weights(ema1), weights(ema2))
    raw3, _, l3, _ = fit(cfg(seed=1), Z, tmp_path / "b", progress=False)
    assert l3 != l1


def test_loss_decreases(tmp_path):
    _, _, losses, _ = fit(cfg(iters=150, lr=3e-3, checkpoint_every=1000), Z, tmp_path, progress=False)
    assert sum(losses[-20:]) / 20 < 0.9 * sum(losses[:20]) / 20


def test_resume_after_interruption_matches(tmp_path, monkeypatch):
    (tmp_path / "full").mkdir(), (tmp_path / "cut").mkdir()
    raw_full, ema_full, l_full, _ = fit(cfg(), Z, tmp_path / "full", progress=False)
    real_loss, calls = train_mod.training_loss, {"n": 0}

    def dies_at_iteration_7(*a, **k):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real_loss(*a, **k)
    monkeypatch.setattr(train_mod, "training_loss", dies_at_iteration_7)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg(), Z, tmp_path / "cut", progress=False)
    assert torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["iter"] == 4
    assert not list((tmp_path / "cut").glob("*.tmp"))  # atomic writes leave no temp files
    monkeypatch.setattr(train_mod, "training_loss", real_loss)
    raw, ema, losses, _ = fit(cfg(), Z, tmp_path / "cut", resume=True, progress=False)
    assert losses == l_full
    assert torch.equal(weights(raw), weights(raw_full)) and torch.equal(weights(ema), weights(ema_full))


def test_lr_schedule_warms_up_then_decays():
    c = RunConfig(iters=100, lr=1e-3, min_lr=1e-6, warmup=0.1)
    f = lr_lambda(c)
    assert f(0) == pytest.approx(1e-3) and f(10) == pytest.approx(1.0) and f(99) < 0.01
    assert all(f(i) <= f(10) for i in range(100))


def test_paper_recipe_and_epochs():
    from adlib.cli import parser
    from adlib.cli.common import config_from_args as _config
    from adlib.runs.config import recipe
    c = recipe("paper")
    assert (c.model, c.backbone, c.batch_size, c.lr, c.ema_decay, c.grad_checkpointing) == \
        ("dit-paper", "b4", 64, 5e-5, 0.999, "auto")
    assert c.iters_for(3000) == 300 * 3000 // 64 + 1  # 300 epochs of 3000 images at batch 64 (rounded up)
    a = parser().parse_args(["train", "--out", "x", "--recipe", "paper", "--iters", "7"])
    given = _config(a)  # options on the command line win over the recipe
    assert (given.model, given.iters, given.iters_for(10**6), given.lr) == ("dit-paper", 7, 7, 5e-5)
    assert _config(parser().parse_args(["train", "--out", "x"])) == RunConfig()


@pytest.mark.parametrize("name, kw", [("mlp", dict(hidden=16, depth=2)), ("dit", dict(hidden=16, depth=2, heads=2))])
def test_gradient_checkpointing_gives_the_same_gradients(name, kw):
    from adlib.models import build_model
    torch.manual_seed(0)
    m = build_model(name, 8, 4, **kw)
    for q in m.parameters():  # leave adaLN-Zero's zero init, so every block matters
        torch.nn.init.normal_(q, std=0.2)
    x, t = torch.randn(3, 8, 4, 4), torch.tensor([1, 400, 900])

    def grads():
        m.zero_grad()
        m(x, t).square().sum().backward()
        return weights_grad(m)
    plain = grads()
    m.enable_gradient_checkpointing()
    assert m.is_gradient_checkpointing and torch.allclose(grads(), plain, atol=1e-6)


def weights_grad(m):
    return torch.cat([p.grad.flatten() for p in m.parameters()])


class _RunsCodeWhenUnpickled:
    """What a crafted checkpoint would carry: unpickling it calls a function of the attacker's choosing."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code ran"))


@pytest.mark.parametrize("how", ["crafted", "damaged"])
def test_a_crafted_or_damaged_checkpoint_is_refused_and_never_executed(tmp_path, how):
    out, marker = tmp_path / "run", tmp_path / "PWNED"
    fit(cfg(), Z, out, progress=False)
    state = torch.load(out / CHECKPOINT, weights_only=True)
    if how == "crafted":
        state["losses"] = _RunsCodeWhenUnpickled(str(marker))
        torch.save(state, out / CHECKPOINT)
    else:
        (out / CHECKPOINT).write_bytes((out / CHECKPOINT).read_bytes()[:200])
    with pytest.raises(AdlibError) as e:
        fit(cfg(), Z, out, resume=True, progress=False)
    assert str(out / CHECKPOINT) in str(e.value) and "delete it" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()  # the payload never ran
    if how == "crafted":  # the control: loading it the unsafe way does run the payload
        torch.load(out / CHECKPOINT, weights_only=False)
        assert marker.read_text() == "code ran"
