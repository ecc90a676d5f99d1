"""eps-networks: shapes, adaLN-Zero start, safetensors round trip through save/from_pretrained, and the
Gaussian base + learned residual (EpsResidual) with its fit_base hook and training through adlib.runs.train.fit."""
import pytest
import torch

from adlib.errors import AdlibError
from adlib.models import PRESETS, EpsGaussian, EpsResidual, build_model, denoising_loss, load_model

SMALL = {"mlp": dict(hidden=32, depth=2), "mlp-pos": dict(hidden=32, depth=2), "dit": dict(hidden=32, depth=2, heads=2),
         "unet": dict(widths=(32, 64)), "conv": dict(hidden=32, depth=2), "gaussian": {},
         "gaussian+mlp": dict(residual_kwargs=dict(hidden=32, depth=2)),
         "gaussian+conv": dict(residual_kwargs=dict(hidden=32, depth=2)),
         "gaussian+dit": dict(residual_kwargs=dict(hidden=32, depth=2, heads=2)),
         "gaussian+unet": dict(residual="unet", residual_kwargs=dict(widths=(32, 64))),
         "standard+conv": dict(residual_kwargs=dict(hidden=32, depth=2))}
RESIDUAL_NAMES = [n for n in SMALL if n.startswith("gaussian+")]


def small(name, channels=12, grid=4, **kw):
    return build_model(name.replace("gaussian+unet", "gaussian+mlp"), channels, grid, **{**SMALL[name], **kw})


def fitted(m, seed=0):
    """Perturb the weights and fit a Gaussian part (if any) to random correlated features."""
    for p in m.parameters():
        p.data += 0.05 * torch.randn_like(p)
    if hasattr(m, "fit_base"):
        c, g = m.config.channels, m.config.grid
        z = torch.randn(40, c, g, g, generator=torch.Generator().manual_seed(seed))
        m.fit_base(z + 0.5 * z.roll(1, dims=1) + 1.0)
    return m


@pytest.mark.parametrize("name", list(SMALL))
def test_round_trip_and_shapes(name, tmp_path):
    torch.manual_seed(0)
    m = fitted(small(name))
    x, t = torch.randn(3, 12, 4, 4), torch.tensor([0, 500, 999])
    y = m(x, t)
    assert y.shape == x.shape
    m.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    back = load_model(tmp_path)
    assert type(back) is type(m) and torch.allclose(back(x, t), y, atol=1e-5)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_on_the_meta_device(name):
    """What adlib.runs.run.check_options does before a run: shapes only, no memory."""
    with torch.device("meta"):
        build_model(name, 192, 16)


@pytest.mark.parametrize("name", ["mlp", "dit", "conv"])
def test_adaln_zero_starts_at_eps_zero(name):
    m = small(name)
    assert m(torch.randn(2, 12, 4, 4), torch.tensor([1, 2])).abs().max() == 0


def test_mlp_is_per_position():
    torch.manual_seed(0)
    m = build_model("mlp", 6, 4, **SMALL["mlp"])
    for p in m.parameters():
        p.data += 0.1 * torch.randn_like(p)
    x, t = torch.randn(1, 6, 4, 4), torch.tensor([100])
    y = m(x, t)
    x2 = x.clone()
    x2[0, :, 0, 0] += 5  # change one position: only that position's output moves
    d = (m(x2, t) - y).abs().sum(1)[0]
    assert d[0, 0] > 0 and d.flatten()[1:].max() == 0


def test_conv_sees_the_neighbours_only():
    torch.manual_seed(0)
    m = fitted(build_model("conv", 6, 5, hidden=16, depth=1))
    x, t = torch.randn(1, 6, 5, 5), torch.tensor([100])
    x2 = x.clone()
    x2[0, :, 2, 2] += 5
    moved = (m(x2, t) - m(x, t)).abs().sum(1)[0] > 0
    assert moved[1:4, 1:4].all() and moved.sum() == 9  # one 3 x 3 conv: the 3 x 3 neighbourhood


def test_paper_dit_preset_and_unknown():
    assert PRESETS["dit-paper"][1] == dict(hidden=2048, depth=16, heads=8)
    with pytest.raises(AdlibError, match="--model"):
        build_model("resnet", 4, 4)
    with pytest.raises(ValueError, match="residual"):
        build_model("gaussian+mlp", 4, 4, residual="resnet")


@pytest.mark.parametrize("name", ["mlp", "dit"])
def test_eps_follows_the_input_scale_only_without_final_layernorm(name):
    """Why final_norm=False: with DiT's final LayerNorm |eps| per position ignores |x|, so an input far
    outside the training distribution gets an ordinary eps and DDIM inversion erases its anomaly."""
    x, t = torch.randn(2, 12, 4, 4), torch.tensor([333, 333])
    ratios = {}
    for final_norm in (True, False):
        torch.manual_seed(0)
        m = build_model(name, 12, 4, **SMALL[name], final_norm=final_norm)
        for p in m.parameters():
            p.data += 0.05 * torch.randn_like(p)
        with torch.no_grad():
            ratios[final_norm] = (m(4 * x, t).norm() / m(x, t).norm()).item()
    assert ratios[True] < 1.5 and ratios[False] > 2.0, ratios


# Gaussian base + learned residual ------------------------------------------------------------------------------

Z = torch.randn(64, 6, 4, 4, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", RESIDUAL_NAMES)
def test_residual_starts_as_its_gaussian_base_and_trains_only_the_residual(name):
    base = EpsGaussian.fit(Z, shrinkage=0.2)
    m = small(name, 6, 4, base=base)
    x, t = torch.randn(4, 6, 4, 4), torch.tensor([0, 333, 666, 999])
    assert torch.equal(m(x, t), base(x, t))
    assert m.config.base_kwargs == dict(shrinkage=0.2, target="pooled", ridge=0.01, window=1)
    assert all(n.startswith("net.") for n, _ in m.named_parameters())
    buffers = {n for n, _ in m.named_buffers() if n.startswith("base.")}
    assert buffers == {"base.mean", "base.eigvec", "base.eigval", "base.rho"}
    m(x, t).square().sum().backward()  # gradients reach the residual's output layer, nothing else is a parameter
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_standard_residual_starts_at_the_standard_normals_eps_and_its_control_is_the_base():
    """standard+conv: eps(x, t) = sqrt(1 - abar_t) x + r(x, t) with r = 0 at the start; the control is the base."""
    from adlib.models import EpsStandard
    from adlib.models.controls import control_model
    from adlib.schedule import alphas_cumprod
    m = small("standard+conv", 6, 4).fit_base(Z)
    x, t = torch.randn(4, 6, 4, 4), torch.tensor([0, 333, 666, 999])
    abar = alphas_cumprod()[t].view(-1, 1, 1, 1).float()
    assert isinstance(m.base, EpsStandard) and torch.allclose(m(x, t), (1 - abar).sqrt() * x, atol=1e-4)
    assert control_model(m) == ("zero-residual", m.base)
    with pytest.raises(ValueError, match="base_model"):
        EpsResidual(channels=6, grid=4, base_model="laplace")


def test_fit_base_hook_and_base_from_a_saved_folder(tmp_path):
    hooked = build_model("gaussian+mlp", 6, 4, base_kwargs=dict(shrinkage=0.3), **SMALL["gaussian+mlp"]).fit_base(Z)
    direct = EpsGaussian.fit(Z, shrinkage=0.3)
    x, t = torch.randn(2, 6, 4, 4), torch.tensor([10, 500])
    assert torch.equal(hooked(x, t), direct(x, t))
    direct.save_pretrained(tmp_path / "gauss")
    from_folder = build_model("gaussian+conv", 6, 4, base=str(tmp_path / "gauss"), **SMALL["gaussian+conv"])
    assert torch.equal(from_folder(x, t), direct(x, t)) and from_folder.config.base_kwargs["shrinkage"] == 0.3
    alone = build_model("gaussian", 6, 4, shrinkage=0.3).fit_base(Z)  # the preset `gaussian`: base alone
    assert torch.equal(alone(x, t), direct(x, t)) and not list(alone.parameters())


def test_denoising_loss_is_seeded_and_the_gaussian_beats_a_wrong_one():
    base = EpsGaussian.fit(Z)
    assert denoising_loss(base, Z, seed=3, n_t=4) == denoising_loss(base, Z, seed=3, n_t=4)
    assert denoising_loss(base, Z, seed=3, n_t=4) != denoising_loss(base, Z, seed=4, n_t=4)
    wrong = EpsGaussian(channels=6, grid=4)  # N(0, I): the right eps only for whitened features
    shifted = 3 + 2 * Z
    assert denoising_loss(EpsGaussian.fit(shifted), shifted, n_t=4) < denoising_loss(wrong, shifted, n_t=4)


def bimodal(n, seed):
    """Features far from Gaussian: +-2 (one sign per sample, shared by all channels) plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    sign = torch.randint(0, 2, (n, 1, 1, 1), generator=g).float() * 2 - 1
    return 2 * sign + 0.3 * torch.randn(n, 4, 2, 2, generator=g)


def test_train_fit_trains_a_residual_over_a_fitted_base(tmp_path):
    """adlib.runs.train.fit as it is: the base comes in through model_kwargs (a saved EpsGaussian's folder), both the
    trained and the EMA model carry it, and the residual goes below the base's held-out denoising loss."""
    from adlib.runs.config import RunConfig
    from adlib.runs.train import fit
    z, held_out = bimodal(512, 0), bimodal(256, 1)
    base = EpsGaussian.fit(z)
    base.save_pretrained(tmp_path / "base")
    cfg = RunConfig(model="gaussian+mlp", model_kwargs=dict(base=str(tmp_path / "base"),
                                                            residual_kwargs=dict(hidden=32, depth=2)),
                    iters=300, batch_size=32, lr=3e-3, device="cpu", snapshots=False, checkpoint_every=10 ** 9)
    raw, ema, losses, _ = fit(cfg, z, tmp_path / "run", progress=False)
    for m in (raw, ema):
        assert torch.equal(m.base.eigvec, base.eigvec) and torch.equal(m.base.mean, base.mean)
    base_loss, raw_loss = denoising_loss(base, held_out, n_t=8), denoising_loss(raw, held_out, n_t=8)
    print(f"held-out denoising loss: Gaussian base {base_loss:.4f}, base + MLP residual {raw_loss:.4f}")
    assert raw_loss < 0.9 * base_loss
    raw.save_pretrained(tmp_path / "saved")
    x, t = held_out[:3], torch.tensor([0, 400, 900])
    assert torch.allclose(load_model(tmp_path / "saved")(x, t), raw(x, t), atol=1e-6)


def test_residual_gradient_checkpointing_reaches_its_blocks():
    m = small("gaussian+mlp", 6, 4)
    m.enable_gradient_checkpointing()
    assert isinstance(m, EpsResidual) and m.net.gradient_checkpointing


def test_the_standard_normals_eps_is_the_identity_gaussians_written_out():
    """EpsStandard.forward (one multiply) = EpsGaussian.forward with mu = 0, U = I, lam = 1 (two rotations)."""
    from adlib.models import EpsGaussian, EpsStandard
    x, t = torch.randn(3, 6, 4, 4), torch.tensor([0, 500, 999])
    fast, slow = EpsStandard(channels=6, grid=4), EpsGaussian(channels=6, grid=4)
    assert torch.allclose(fast(x, t), slow(x, t), rtol=1e-6, atol=1e-7)
    assert fast(x.double(), t).dtype == torch.float64


@pytest.mark.parametrize("grid", ["paper", "reference"])
@pytest.mark.parametrize("steps", [1, 3, 10])
def test_a_linear_eps_folds_the_inversion_into_one_multiply_that_equals_the_steps(grid, steps):
    """invert() with EpsStandard (eps = c_t x: one multiply by the product of the step gains) = the S DDIM steps
    taken one by one (trajectory=True walks them); a model without eps_scale is stepped."""
    from adlib.method.inversion import invert, make_grid
    from adlib.models import EpsStandard
    m, z, points = EpsStandard(channels=6, grid=4), torch.randn(5, 6, 4, 4), make_grid(steps, grid)
    seen = []
    m.register_forward_hook(lambda *_: seen.append(1))
    folded = invert(m, z, points)
    assert not seen   # folded: eps never evaluated
    stepped, states = invert(m, z, points, trajectory=True)
    assert len(states) == steps + 1 and torch.allclose(folded, stepped, rtol=1e-6, atol=1e-7)
    ratio = folded / z   # one global factor, below 1 (each step is a rotation's cosine; 1 only on no step)
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio)) and 0 < ratio.flatten()[0] < 1
    calls = []
    wrapped = lambda x, t: (calls.append(1), m(x, t))[1]   # noqa: E731 - no eps_scale: the steps are taken
    assert torch.allclose(invert(wrapped, z, points), folded, rtol=1e-6, atol=1e-7) and len(calls) == steps
