"""Data loading: MVTec-layout folders, the embedded ELPV split, image and mask decoding."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adlib.data import Dataset, Sample, load_elpv, load_image, load_mask, load_mvtec, load_spec, make_mini_mvtec
from adlib.data import images as images_module
from adlib.data.mini import DEFECTS
from adlib.errors import AdlibError

SMALL = dict(size=64, n_train=10, n_test_good=2, n_test_per_defect=2)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return make_mini_mvtec(tmp_path_factory.mktemp("data") / "small", seed=3, **SMALL)


@pytest.fixture
def cat(small, tmp_path):
    """A private, writable copy of the small category."""
    return shutil.copytree(small, tmp_path / "cat")


# --- MVTec layout --------------------------------------------------------------------------------

def test_load_mvtec_layout(small):
    data = load_mvtec(small)
    assert isinstance(data, Dataset) and data.has_masks
    assert data.spec == str(small)
    # 10% of 10 training images held out for validation, the rest trains
    assert len(data.train) == 9 and len(data.val) == 1
    assert not {s.path for s in data.train} & {s.path for s in data.val}
    assert all(s.label == 0 and s.defect == "good" and s.mask is None for s in data.train + data.val)
    good = [s for s in data.test if s.label == 0]
    bad = [s for s in data.test if s.label == 1]
    assert len(good) == 2 and len(bad) == 2 * len(DEFECTS)
    assert all(s.defect == "good" and s.mask is None for s in good)
    assert {s.defect for s in bad} == set(DEFECTS)
    for s in bad:  # masks pair with their image by stem, in the defect's folder
        img = Path(s.path)
        assert img.parent == small / "test" / s.defect
        assert s.mask == str(small / "ground_truth" / s.defect / f"{img.stem}_mask.png")


def test_masks_pair_by_stem_not_by_order(cat):
    # give the images of one defect names whose sort order differs from the masks' old order
    d, gt = cat / "test" / "spot", cat / "ground_truth" / "spot"
    (d / "000.png").rename(d / "b.png"), (gt / "000_mask.png").rename(gt / "b_mask.png")
    (d / "001.png").rename(d / "a.png"), (gt / "001_mask.png").rename(gt / "a_mask.png")
    data = load_mvtec(cat)
    spot = {s.path: s.mask for s in data.test if s.defect == "spot"}
    assert spot == {str(d / "a.png"): str(gt / "a_mask.png"), str(d / "b.png"): str(gt / "b_mask.png")}
    # and the pairing is right pixel for pixel: the mask marks where the image differs from normal
    for img, mask in spot.items():
        assert load_mask(mask, img, 64).any()


def test_without_ground_truth_is_image_level_only(cat):
    shutil.rmtree(cat / "ground_truth")
    data = load_mvtec(cat)
    assert data.has_masks is False
    assert all(s.mask is None for s in data.test)
    assert sum(s.label for s in data.test) == 2 * len(DEFECTS)


def test_missing_mask_when_others_have_masks(cat):
    missing = cat / "ground_truth" / "hole" / "001_mask.png"
    missing.unlink()
    with pytest.raises(AdlibError) as e:
        load_mvtec(cat)
    msg = str(e.value)
    assert str(cat / "test" / "hole" / "001.png") in msg and "001_mask.png" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("how", ["missing", "empty", "only-non-images"])
def test_missing_or_empty_train_good(cat, how):
    good = cat / "train" / "good"
    shutil.rmtree(good)
    if how != "missing":
        good.mkdir()
    if how == "only-non-images":
        (good / "notes.txt").write_text("not an image")
    with pytest.raises(AdlibError, match="train/good"):
        load_mvtec(cat)


def test_test_folder_needs_good_and_a_defect(cat):
    shutil.rmtree(cat / "test" / "good")
    with pytest.raises(AdlibError, match="test/good"):
        load_mvtec(cat)


def test_validation_split_is_seeded(tmp_path):
    cat = make_mini_mvtec(tmp_path / "c", seed=1, size=64, n_train=20, n_test_good=1, n_test_per_defect=1)
    a, b, c = load_mvtec(cat, split_seed=0), load_mvtec(cat, split_seed=0), load_mvtec(cat, split_seed=1)
    assert len(a.val) == 2 and len(a.train) == 18  # 10% held out of train/good
    assert a.split_record() == b.split_record()
    assert [s.path for s in a.val] != [s.path for s in c.val]
    assert a.info["val"] == "10% of train/good"
    paths = sorted(s.path for s in a.train + a.val)
    assert paths == sorted(str(p) for p in (cat / "train" / "good").iterdir())


def test_explicit_val_good_is_used(cat):
    val = cat / "val" / "good"
    val.mkdir(parents=True)
    for name in ("000.png", "001.png"):
        shutil.copy(cat / "test" / "good" / name, val / f"v{name}")
    data = load_mvtec(cat)
    assert sorted(s.path for s in data.val) == [str(val / "v000.png"), str(val / "v001.png")]
    assert len(data.train) == 10  # nothing held out of train/good
    assert data.info["val"] == "val/good"


def test_empty_val_folder_falls_back_to_holding_out(cat):
    (cat / "val" / "good").mkdir(parents=True)
    data = load_mvtec(cat)
    assert len(data.val) == 1 and len(data.train) == 9
    assert data.info["val"] == "10% of train/good"


def test_single_training_image_needs_val(cat):
    for p in sorted((cat / "train" / "good").iterdir())[1:]:
        p.unlink()
    with pytest.raises(AdlibError, match="at least 2"):
        load_mvtec(cat)
    (cat / "val" / "good").mkdir(parents=True)
    shutil.copy(cat / "test" / "good" / "000.png", cat / "val" / "good" / "v.png")
    data = load_mvtec(cat)
    assert len(data.train) == 1 and len(data.val) == 1


def test_split_record_lists_files(small):
    data = load_mvtec(small)
    rec = data.split_record()
    assert rec["spec"] == str(small) and rec["split_seed"] == 0
    for k in ("train", "val", "test"):
        assert rec[k] == [s.path for s in getattr(data, k)]
        assert all(isinstance(p, str) for p in rec[k])


def test_all_formats_are_listed_and_decoded(cat):
    good = cat / "train" / "good"
    src = Image.open(good / "000.png").convert("RGB")
    src.save(good / "f_jpeg.jpg", quality=95)
    src.save(good / "f_jpeg2.JPEG", quality=95)
    src.save(good / "f_bmp.bmp")
    src.save(good / "f_tiff.tif")
    src.save(good / "f_tiff2.tiff")
    src.save(good / "f_upper.PNG", format="PNG")
    (good / "ignored.txt").write_text("x")
    data = load_mvtec(cat, val_fraction=0.0001)  # keeps one image for validation
    names = {s.path.rsplit("/", 1)[1] for s in data.train + data.val}
    assert {"f_jpeg.jpg", "f_jpeg2.JPEG", "f_bmp.bmp", "f_tiff.tif", "f_tiff2.tiff", "f_upper.PNG"} <= names
    assert "ignored.txt" not in names
    ref = load_image(good / "000.png", 64)
    for name in ("f_jpeg.jpg", "f_jpeg2.JPEG", "f_bmp.bmp", "f_tiff.tif", "f_tiff2.tiff", "f_upper.PNG"):
        t = load_image(good / name, 64)
        assert t.shape == (3, 64, 64) and t.dtype == torch.float32
        if "jpeg" in name:  # lossy
            assert (t - ref).abs().mean() < 0.03
        else:
            assert torch.equal(t, ref)


# --- load_spec -----------------------------------------------------------------------------------

def test_load_spec_paths(small):
    assert load_spec(str(small)).split_record() == load_mvtec(small).split_record()
    assert load_spec(f"mvtec:{small}").split_record() == load_mvtec(small).split_record()


@pytest.mark.parametrize("spec", ["foo:bar", "elpv:foo", "/no/such/category", "mvtec:/no/such/category"])
def test_unknown_spec(spec):
    with pytest.raises(AdlibError) as e:
        load_spec(spec)
    assert spec in str(e.value) and "elpv:mono" in str(e.value)


# --- image decoding ------------------------------------------------------------------------------

def _check(t, size):
    assert t.shape == (3, size, size) and t.dtype == torch.float32
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


def test_rgb_values_and_resize(tmp_path):
    a = np.zeros((40, 40, 3), np.uint8)
    a[...] = (10, 200, 30)
    Image.fromarray(a, "RGB").save(tmp_path / "rgb.png")
    t = load_image(tmp_path / "rgb.png", 32)
    _check(t, 32)
    assert torch.allclose(t, torch.tensor([10, 200, 30]).view(3, 1, 1).float().expand(3, 32, 32) / 255)


def test_gray_is_repeated_to_three_channels(tmp_path):
    a = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(a, "L").save(tmp_path / "gray.png")
    t = load_image(tmp_path / "gray.png", 8)
    _check(t, 8)
    assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])
    assert torch.allclose(t[0] * 255, torch.from_numpy(a).float())


def test_16bit_gray_png_known_values(tmp_path):
    # 257 * k in 16 bit is exactly k in 8 bit; 0 -> 0 and 65535 -> 1
    a = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    t = load_image(tmp_path / "g16.png", 16)
    _check(t, 16)
    assert torch.equal(t[0], t[2])
    assert torch.equal((t[0] * 255).round().flatten(), torch.arange(256).float())
    assert float(t[0, 0, 0]) == 0.0 and float(t[0, -1, -1]) == 1.0


def test_16bit_gray_dark_image_is_not_mistaken_for_8bit(tmp_path):
    # a dark 16-bit image (all values <= 255) in a 16-bit dataset stays dark: 200 / 65535 is ~0, not 200 / 255
    Image.fromarray(np.full((8, 8), 200, np.uint16)).save(tmp_path / "dark16.png")
    Image.fromarray(np.full((8, 8), 60000, np.uint16)).save(tmp_path / "bright16.png")
    depth = images_module.infer_bit_depth([tmp_path / "dark16.png", tmp_path / "bright16.png"])
    assert depth == 16
    with pytest.warns(UserWarning, match="nearly constant"):
        assert float(load_image(tmp_path / "dark16.png", 8, bit_depth=depth).max()) < 0.01
    # alone and without a bit depth, its own maximum is all there is to go on: it reads as 8-bit data
    with pytest.warns(UserWarning, match="dark16.png"):
        assert torch.allclose(load_image(tmp_path / "dark16.png", 8), torch.full((3, 8, 8), 200 / 255))


def test_16bit_gray_tiff(tmp_path):
    a = np.full((8, 8), 65535, np.uint16)
    a[:4] = 0
    Image.fromarray(a).save(tmp_path / "g16.tif")
    t = load_image(tmp_path / "g16.tif", 8)
    _check(t, 8)
    assert float(t[:, :4].max()) == 0.0 and float(t[:, 4:].min()) == 1.0


def test_rgba_transparent_becomes_white(tmp_path):
    a = np.zeros((8, 8, 4), np.uint8)  # black
    a[:, 4:, 3] = 255               # right half opaque black, left half fully transparent
    a[:2, :4, 3] = 128              # half-transparent black over white -> mid gray
    Image.fromarray(a, "RGBA").save(tmp_path / "rgba.png")
    t = load_image(tmp_path / "rgba.png", 8)
    _check(t, 8)
    assert float(t[:, 2:, :4].min()) == 1.0
    assert float(t[:, :, 4:].max()) == 0.0
    assert torch.allclose(t[:, :2, :4], torch.full((3, 2, 4), 127 / 255), atol=2 / 255)


def test_la_and_palette_with_transparency(tmp_path):
    la = Image.fromarray(np.stack([np.full((8, 8), 50, np.uint8), np.zeros((8, 8), np.uint8)], -1), "LA")
    la.save(tmp_path / "la.png")
    with pytest.warns(UserWarning, match="nearly constant"):  # all transparent: a blank white frame
        assert float(load_image(tmp_path / "la.png", 8).min()) == 1.0
    p = Image.new("P", (8, 8), 0)
    p.putpalette([10, 20, 30] + [200, 0, 0] * 255)
    p.paste(1, (0, 0, 8, 4))
    p.info["transparency"] = 1  # palette index 1 is transparent
    p.save(tmp_path / "p.png", transparency=1)
    t = load_image(tmp_path / "p.png", 8)
    _check(t, 8)
    assert float(t[:, :4].min()) == 1.0
    assert torch.allclose(t[:, 4:], (torch.tensor([10, 20, 30]) / 255).view(3, 1, 1).expand(3, 4, 8))


def test_undecodable_image(tmp_path):
    bad = tmp_path / "garbage.png"
    bad.write_bytes(b"this is not an image" * 10)
    with pytest.raises(AdlibError) as e:
        load_image(bad, 32)
    assert str(bad) in str(e.value) and "--skip-bad" in str(e.value) and "\n" not in str(e.value)
    truncated = tmp_path / "truncated.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(tmp_path / "ok.png")
    truncated.write_bytes((tmp_path / "ok.png").read_bytes()[:60])
    with pytest.raises(AdlibError, match="truncated.png"):
        load_image(truncated, 32)


# --- masks ---------------------------------------------------------------------------------------

def test_load_mask(small):
    img = small / "test" / "scratch" / "000.png"
    mask = small / "ground_truth" / "scratch" / "000_mask.png"
    m = load_mask(mask, img, 32)
    assert m.shape == (32, 32) and m.dtype == torch.bool
    full = np.asarray(Image.open(mask)) > 127
    assert m.any() and np.array_equal(load_mask(mask, img, 64).numpy(), full)


def test_masks_stored_as_0_1_are_read(cat):
    img = cat / "test" / "spot" / "000.png"
    mask = cat / "ground_truth" / "spot" / "000_mask.png"
    full = np.asarray(Image.open(mask)) > 127
    Image.fromarray(full.astype(np.uint8)).save(mask)  # 0/1 instead of 0/255
    assert np.array_equal(load_mask(mask, img, 64).numpy(), full) and full.any()
    assert any(s.mask == str(mask) for s in load_mvtec(cat).test)


def test_empty_mask_of_anomalous_image_is_refused(cat):
    mask = cat / "ground_truth" / "hole" / "001_mask.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(mask)
    with pytest.raises(AdlibError) as e:
        load_mvtec(cat)
    msg = str(e.value)
    assert str(mask) in msg and "empty" in msg and "\n" not in msg


def test_mask_size_must_match_image(cat):
    img = cat / "test" / "spot" / "000.png"
    mask = cat / "ground_truth" / "spot" / "000_mask.png"
    Image.open(mask).resize((32, 32), Image.NEAREST).save(mask)
    with pytest.raises(AdlibError) as e:
        load_mask(mask, img, 64)
    assert str(mask) in str(e.value) and "32x32" in str(e.value) and "64x64" in str(e.value)


def test_undecodable_mask(cat):
    mask = cat / "ground_truth" / "spot" / "000_mask.png"
    mask.write_bytes(b"garbage")
    with pytest.raises(AdlibError, match="000_mask.png"):
        load_mask(mask, cat / "test" / "spot" / "000.png", 64)


# --- ELPV images (the split and its halves: test_data_elpv.py) --------------------------------------

def test_elpv_images_decode():
    data = load_elpv("mono")
    t = load_image(data.train[0].path, 64)
    _check(t, 64)
    assert torch.equal(t[0], t[1]) and torch.equal(t[1], t[2])  # gray cells, repeated to RGB


def test_sample_defaults():
    s = Sample("x.png", 0)
    assert s.defect == "good" and s.mask is None
