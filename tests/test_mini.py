import numpy as np
import pytest
from PIL import Image

from adlib.data.mini import DEFECTS, MARGIN, TEXTURES, _anomalous_sample, make_mini_mvtec, make_mini_root
from adlib.errors import AdlibError

SMALL = dict(size=64, n_train=3, n_test_good=2, n_test_per_defect=2)


def _files(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _load(p):
    return np.asarray(Image.open(p))


@pytest.mark.parametrize("texture", TEXTURES)
def test_layout(tmp_path, texture):
    out = make_mini_mvtec(tmp_path / "cat", texture=texture, **SMALL)
    assert out == tmp_path / "cat"
    assert len(list((out / "train/good").glob("*.png"))) == 3
    assert len(list((out / "test/good").glob("*.png"))) == 2
    assert not (out / "ground_truth/good").exists()
    assert "seed" in (out / "README.txt").read_text()
    assert sorted(p.name for p in (out / "test").iterdir()) == sorted(["good", *DEFECTS])
    for kind in DEFECTS:
        imgs = sorted((out / "test" / kind).glob("*.png"))
        assert len(imgs) == 2 and len(list((out / "ground_truth" / kind).iterdir())) == 2
        for p in imgs:
            img = _load(p)
            mask = _load(out / "ground_truth" / kind / f"{p.stem}_mask.png")
            assert img.shape == (64, 64, 3) and img.dtype == np.uint8
            assert mask.shape == (64, 64) and mask.dtype == np.uint8
            assert set(np.unique(mask)) == {0, 255}
            frac = (mask > 0).mean()
            assert 0.002 < frac < 0.05, (kind, frac)
            ys, xs = np.nonzero(mask)
            assert ys.min() >= MARGIN and xs.min() >= MARGIN
            assert ys.max() < 64 - MARGIN and xs.max() < 64 - MARGIN
            # defect visibly differs from its surroundings
            inside, outside = img[mask > 0].astype(float), img[mask == 0].astype(float)
            assert np.abs(inside.mean(0) - outside.mean(0)).max() > 40, (kind, texture)
    for p in (out / "train/good").glob("*.png"):
        assert _load(p).shape == (64, 64, 3)


def test_no_temp_leftovers(tmp_path):
    make_mini_mvtec(tmp_path / "cat", **SMALL)
    assert [p.name for p in tmp_path.iterdir()] == ["cat"]


def test_deterministic(tmp_path):
    a = _files(make_mini_mvtec(tmp_path / "a", seed=7, **SMALL))
    b = _files(make_mini_mvtec(tmp_path / "b", seed=7, **SMALL))
    c = _files(make_mini_mvtec(tmp_path / "c", seed=8, **SMALL))
    assert a == b
    assert a.keys() == c.keys()
    assert any(a[k] != c[k] for k in a if k.endswith(".png"))


def test_normal_images_vary(tmp_path):
    out = make_mini_mvtec(tmp_path / "cat", **SMALL)
    imgs = [_load(p) for p in sorted((out / "train/good").glob("*.png"))]
    assert not np.array_equal(imgs[0], imgs[1])


def test_existing_folder(tmp_path):
    target = tmp_path / "cat"
    target.mkdir()
    make_mini_mvtec(target, **SMALL)  # empty folder is fine
    with pytest.raises(AdlibError, match="overwrite"):
        make_mini_mvtec(target, **SMALL)
    (target / "stale.txt").write_text("x")
    make_mini_mvtec(target, overwrite=True, seed=3, **SMALL)
    assert not (target / "stale.txt").exists()
    assert (target / "train/good/000.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat"]


def test_bad_arguments(tmp_path):
    with pytest.raises(AdlibError):
        make_mini_mvtec(tmp_path / "x", texture="marble", **SMALL)
    with pytest.raises(AdlibError):
        make_mini_root(tmp_path / "r", categories=("bottle",), **SMALL)


@pytest.mark.parametrize("texture", TEXTURES)
@pytest.mark.parametrize("kind", DEFECTS)
def test_defect_differs_from_clean_background(texture, kind):
    rng = np.random.default_rng(0)
    for _ in range(5):
        img, mask, clean = _anomalous_sample(rng, texture, 64, kind)
        assert mask.any()
        assert np.array_equal(img[~mask], clean[~mask])
        assert np.abs(img[mask] - clean[mask]).mean() * 255 > 60, (texture, kind)


def test_make_mini_root(tmp_path):
    root = make_mini_root(tmp_path / "root", seed=1, **SMALL)
    assert sorted(p.name for p in root.iterdir()) == sorted(TEXTURES)
    for name in TEXTURES:
        assert (root / name / "README.txt").exists()
        assert len(list((root / name / "test").iterdir())) == 4
    a = _load(root / "weave/train/good/000.png")
    b = _load(root / "grain/train/good/000.png")
    assert not np.array_equal(a, b)


def test_strength_blends_the_defect_into_the_clean_image():
    """strength s: clean + s (defective - clean) on the same mask; 1 leaves the defect as drawn; out of (0, 1] refused."""
    for kind in DEFECTS:
        full = _anomalous_sample(np.random.default_rng(3), "weave", 64, kind)
        faint = _anomalous_sample(np.random.default_rng(3), "weave", 64, kind, strength=0.25)
        assert np.array_equal(full[1], faint[1]) and np.array_equal(full[2], faint[2])
        assert np.allclose(faint[0] - faint[2], 0.25 * (full[0] - full[2]))
        assert np.abs(faint[0] - faint[2])[full[1]].mean() > 0.01
    with pytest.raises(AdlibError, match="strength"):
        make_mini_mvtec("/nonexistent/x", strength=0)
