"""eps-networks: shapes, adaLN-Zero start, safetensors round trip through save/from_pretrained."""
import pytest
import torch

from adlib.errors import AdlibError
from adlib.models import PRESETS, build_model, load_model

SMALL = {"mlp": dict(hidden=32, depth=2), "mlp-pos": dict(hidden=32, depth=2), "dit": dict(hidden=32, depth=2, heads=2),
         "unet": dict(widths=(32, 64))}


@pytest.mark.parametrize("name", list(SMALL))
def test_round_trip_and_shapes(name, tmp_path):
    torch.manual_seed(0)
    m = build_model(name, 12, 4, **SMALL[name])
    for p in m.parameters():
        p.data += 0.05 * torch.randn_like(p)
    x, t = torch.randn(3, 12, 4, 4), torch.tensor([0, 500, 999])
    y = m(x, t)
    assert y.shape == x.shape
    m.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    assert torch.allclose(load_model(tmp_path)(x, t), y, atol=1e-6)


@pytest.mark.parametrize("name", ["mlp", "dit"])
def test_adaln_zero_starts_at_eps_zero(name):
    m = build_model(name, 12, 4, **SMALL[name])
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


def test_paper_dit_preset_and_unknown():
    assert PRESETS["dit-paper"][1] == dict(hidden=2048, depth=16, heads=8)
    with pytest.raises(AdlibError, match="--model"):
        build_model("resnet", 4, 4)


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
