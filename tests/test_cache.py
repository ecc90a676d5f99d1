"""The per-image feature cache: reuse, invalidation, the hash index, eviction, damaged entries."""
import builtins
import io
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from adlib.data import Sample
from adlib.errors import AdlibError
from adlib.features import cache


class Fake(torch.nn.Module):
    """A stand-in backbone: 4x4 average pooling of the image, counting the images it sees."""
    backbone, image_size = "fake", 16

    def __init__(self):
        super().__init__()
        self.seen = 0

    def forward(self, x):
        self.seen += len(x)
        return F.avg_pool2d(x, 4)  # B x 3 x 4 x 4


def _images(folder, n, start=0):
    folder.mkdir(exist_ok=True)
    out = []
    for i in range(start, start + n):
        a = np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(a).save(folder / f"{i:03d}.png")
        out.append(Sample(str(folder / f"{i:03d}.png"), 0))
    return out


def _entries():
    return sorted(cache.cache_dir().rglob("*.safetensors"))


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ADLIB_CACHE_MAX_MB", raising=False)


def _truth(samples):
    return F.avg_pool2d(cache.decode(samples, 16)[0], 4)


def test_adding_one_image_extracts_only_that_one(tmp_path):
    fake, samples = Fake(), _images(tmp_path / "img", 6)
    z, kept = cache.extract(fake, samples, batch_size=4)
    assert fake.seen == 6 and kept == samples and torch.equal(z, _truth(samples))
    more = samples[:3] + _images(tmp_path / "img", 1, start=6) + samples[3:]  # a new image in the middle
    z, kept = cache.extract(fake, more, batch_size=4)
    assert fake.seen == 7 and kept == more and torch.equal(z, _truth(more))
    assert len(_entries()) == 7  # one entry per image, not one per list
    for p in _entries():  # sharded by the key's first two characters
        assert p.parent.name == p.name[:2] and p.parent.parent == cache.cache_dir()


def test_warm_call_reads_no_image(tmp_path, monkeypatch):
    fake, samples = Fake(), _images(tmp_path / "img", 5)
    z1, _ = cache.extract(fake, samples)
    opened, real_open, real_io_open = [], builtins.open, io.open

    def spy(real):
        return lambda file, *a, **kw: opened.append(str(file)) or real(file, *a, **kw)
    monkeypatch.setattr(builtins, "open", spy(real_open))
    monkeypatch.setattr(io, "open", spy(real_io_open))
    z2, kept = cache.extract(fake, samples)
    assert not {s.path for s in samples} & set(opened)  # neither hashed nor decoded again
    assert torch.equal(z1, z2) and kept == samples and fake.seen == 5


def test_changed_file_is_recomputed(tmp_path):
    fake, samples = Fake(), _images(tmp_path / "img", 3)
    cache.extract(fake, samples)
    Image.new("RGB", (16, 16), (9, 200, 9)).save(samples[1].path)  # same path, new bytes
    z, _ = cache.extract(fake, samples)
    assert fake.seen == 4 and torch.equal(z, _truth(samples))


def test_key_covers_image_size_weights_and_bit_depth(tmp_path):
    fake, samples = Fake(), _images(tmp_path / "img", 2)
    cache.extract(fake, samples)
    cache.extract(fake, samples, bit_depth=12)
    fake.weights_id = "other-weights.pth:123"
    cache.extract(fake, samples)
    fake.image_size = 32
    cache.extract(fake, samples)
    assert fake.seen == 8 and len(_entries()) == 8


def test_skip_bad_keeps_order_and_caches_only_good(tmp_path):
    fake, samples = Fake(), _images(tmp_path / "img", 3)
    bad = tmp_path / "img" / "bad.png"
    bad.write_bytes(b"not an image")
    mixed = [samples[0], Sample(str(bad), 0), samples[1], samples[2]]
    with pytest.raises(AdlibError, match="bad.png"):
        cache.extract(fake, mixed)
    for _ in range(2):  # cold, then warm: the same answer
        z, kept = cache.extract(fake, mixed, batch_size=2, skip_bad=True)
        assert kept == samples and torch.equal(z, _truth(samples))
    assert fake.seen == 3 and len(_entries()) == 3


def test_nan_features_are_an_error_and_not_cached(tmp_path):
    fake, samples = Fake(), _images(tmp_path / "img", 2)
    fake.forward = lambda x: torch.full((len(x), 3, 4, 4), float("nan"))
    with pytest.raises(AdlibError, match="NaN/inf.*000.png"):
        cache.extract(fake, samples)
    assert not _entries()


def test_damaged_entry_is_a_miss(tmp_path):
    fake, samples = Fake(), _images(tmp_path / "img", 3)
    cache.extract(fake, samples)
    entry = _entries()[0]
    entry.write_bytes(entry.read_bytes()[:20])  # truncated
    z, kept = cache.extract(fake, samples)
    assert fake.seen == 4 and kept == samples and torch.equal(z, _truth(samples))
    cache.extract(fake, samples)
    assert fake.seen == 4  # rewritten whole


def test_damaged_hash_index_is_rebuilt(tmp_path):
    fake, samples = Fake(), _images(tmp_path / "img", 2)
    cache.extract(fake, samples)
    (cache.cache_dir() / "hashes.json").write_text("{not json")
    z, _ = cache.extract(fake, samples)
    assert fake.seen == 2 and torch.equal(z, _truth(samples))


def test_eviction_keeps_the_cache_under_its_cap(tmp_path, monkeypatch):
    fake, samples = Fake(), _images(tmp_path / "img", 8)
    cache.extract(fake, samples[:4])
    size = _entries()[0].stat().st_size
    for i, p in enumerate(_entries()):  # distinct ages
        os.utime(p, (1e9 + i, 1e9 + i))
    oldest = min(_entries(), key=lambda p: p.stat().st_mtime)
    monkeypatch.setenv("ADLIB_CACHE_MAX_MB", str(5.5 * size / 2 ** 20))  # room for 5 entries
    z, _ = cache.extract(fake, samples[:4])  # all hits: their mtimes are touched, nothing written
    assert fake.seen == 4 and len(_entries()) == 4
    for i, p in enumerate(_entries()):
        os.utime(p, (1e9 + i, 1e9 + i))
    os.utime(oldest, None)  # recently used: survives
    cache.extract(fake, samples[4:])  # 4 new entries: 8 > 5, the 3 least recently used go
    info = cache.cache_info()
    assert info["entries"] == 5 and info["bytes"] <= info["cap"] == int(5.5 * size)
    assert oldest.is_file()
    assert info["folder"] == str(cache.cache_dir())


def test_cache_info_and_clear(tmp_path):
    fake, samples = Fake(), _images(tmp_path / "img", 3)
    assert cache.cache_info()["entries"] == 0
    cache.extract(fake, samples)
    info = cache.cache_info()
    assert info["entries"] == 3 and info["bytes"] == sum(p.stat().st_size for p in _entries())
    assert info["cap"] == 2048 * 2 ** 20
    assert cache.cache_clear() == 3
    assert cache.cache_info()["entries"] == 0 and not _entries()
    cache.extract(fake, samples)
    assert fake.seen == 6


def test_bad_cap_setting(monkeypatch):
    monkeypatch.setenv("ADLIB_CACHE_MAX_MB", "lots")
    with pytest.raises(AdlibError, match="ADLIB_CACHE_MAX_MB"):
        cache.cache_info()


def test_no_cache_writes_nothing(tmp_path):
    fake, samples = Fake(), _images(tmp_path / "img", 2)
    z, _ = cache.extract(fake, samples, use_cache=False)
    z, _ = cache.extract(fake, samples, use_cache=False)
    assert fake.seen == 4 and not cache.cache_dir().exists()
