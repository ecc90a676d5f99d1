"""Frozen backbone features and their on-disk cache."""

import pytest
import torch

from adlib.data import load_mvtec
from adlib.errors import AdlibError
from adlib.features.backbone import FeatureExtractor
from adlib.features.cache import cache_dir, cache_info, extract


@pytest.fixture(scope="module")
def lite0():
    return FeatureExtractor("lite0", 128)


def test_lite0_stages_and_shape():
    ext = FeatureExtractor("lite0", 256)
    z = ext(torch.rand(2, 3, 256, 256))
    assert z.shape == (2, 192, 16, 16) and torch.isfinite(z).all()
    assert not any(p.requires_grad for p in ext.parameters())


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
