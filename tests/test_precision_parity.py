"""Issue 21: what `--precision bf16` covers (the eps-network, not the backbone) and `--grad-checkpointing auto`."""
import pytest
import torch

from adlib.method import precision
from adlib.runs import memory
from adlib.runs.config import RunConfig, recipe


def test_bf16_scores_with_an_fp32_backbone_and_a_bf16_eps_network():
    """benchmarks/bf16_parity.py: a bf16 backbone moves the maps' ranks; the rule keeps the backbone in fp32."""
    assert precision.backbone_precision("bf16") == "fp32" and precision.backbone_precision("fp32") == "fp32"
    conv, x = torch.nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8)
    with precision.backbone_autocast("cpu", "bf16"):
        assert conv(x).dtype == torch.float32
    with precision.autocast("cpu", "bf16"):
        assert conv(x).dtype == torch.bfloat16


def test_the_backbone_joins_bf16_only_when_asked(monkeypatch):
    monkeypatch.setenv(precision.BF16_BACKBONE_ENV, "1")
    assert precision.backbone_precision("bf16") == "bf16" and precision.backbone_precision("fp32") == "fp32"
    monkeypatch.setenv(precision.BF16_BACKBONE_ENV, "0")
    assert precision.backbone_precision("bf16") == "fp32"


def test_run_features_under_bf16_are_the_fp32_features(monkeypatch):
    from adlib.runs import run as run_mod
    seen = {}
    monkeypatch.setattr(run_mod, "extract", lambda *a, **k: (seen.update(k) or torch.zeros(1, 2, 1, 1), ["s"]))
    monkeypatch.setattr(run_mod, "standardize", lambda z, stats: z)
    fake = type("R", (), {"extractor": None, "device": "cpu", "bit_depth": None, "precision": "bf16", "stats": {},
                          "raw_features": run_mod.Run.raw_features})()
    run_mod.Run.features(fake, ["s"])
    assert seen["precision"] == "fp32"


def test_grad_checkpointing_forced_or_off_on_the_cpu():
    assert memory.resolve_grad_checkpointing(True, "dit", 192, 16, 64, "cpu") is True
    assert memory.resolve_grad_checkpointing(False, "dit", 192, 16, 64, "cuda", free=1) is False
    assert memory.resolve_grad_checkpointing("auto", "dit", 192, 16, 64, "cpu") is False


def test_auto_resolves_against_the_counted_need(monkeypatch):
    need = memory.training_memory("dit", 192, 16, 64)
    assert need["supports"] and need["activation_bytes"] == 64 * need["activation_bytes_per_image"] > 0
    assert memory.resolve_grad_checkpointing("auto", "dit", 192, 16, 64, "cuda", free=need["total"] / 0.5) is False
    assert memory.resolve_grad_checkpointing("auto", "dit", 192, 16, 64, "cuda", free=need["total"]) is True
    monkeypatch.setattr(memory, "free_bytes", lambda device: need["total"])  # what the device says when not given
    assert memory.resolve_grad_checkpointing("auto", "dit", 192, 16, 64, "cuda") is True
    assert memory.resolve_grad_checkpointing("auto", "conv", 192, 16, 64, "cuda", free=1) is False  # cannot


def test_paper_recipe_is_auto_and_resume_compares_the_resolved_value(tmp_path):
    assert recipe("paper").grad_checkpointing == "auto"
    saved = recipe("paper", data="x", grad_checkpointing=False)
    saved.check_resume(recipe("paper", data="x"), tmp_path)  # auto asked: whatever it resolved to is fine
    with pytest.raises(Exception, match="grad-checkpointing"):
        saved.check_resume(recipe("paper", data="x", grad_checkpointing=True), tmp_path)
    assert RunConfig().grad_checkpointing is False
