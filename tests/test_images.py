"""Image decoding: bit depth, near-constant frames, EXIF orientation, aspect ratio, decompression bombs."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from adlib.data import Sample, load_image, load_mask
from adlib.data import images as images_module
from adlib.errors import AdlibError
from adlib.features.cache import decode


def _picture(h=64, w=64) -> np.ndarray:
    """A smooth 8-bit gray picture using most of the range (gradient plus waves)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    return np.round(255 * np.clip(0.1 + 0.6 * x + 0.25 * np.sin(9 * y) ** 2, 0, 1)).astype(np.uint8)


def _no_warnings(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kw)


# --- bit depth -----------------------------------------------------------------------------------

@pytest.fixture
def twelve_bit(tmp_path):
    """The same picture as 8-bit and as 12-bit camera data (max 4095) in a 16-bit PNG."""
    a8 = _picture()
    Image.fromarray(a8).save(tmp_path / "p8.png")
    Image.fromarray(np.round(a8 / 255 * 4095).astype(np.uint16)).save(tmp_path / "p12.png")
    with Image.open(tmp_path / "p12.png") as im:
        assert im.mode.startswith("I") and np.asarray(im).max() <= 4095
    return tmp_path / "p8.png", tmp_path / "p12.png"


def test_12bit_data_is_as_bright_as_its_8bit_version(twelve_bit):
    p8, p12 = twelve_bit
    ref = load_image(p8, 32)
    # per image (bit_depth None): the image's own maximum says 12 bits
    got = _no_warnings(load_image, p12, 32)
    assert abs(float(got.mean()) / float(ref.mean()) - 1) < 0.02
    # per dataset: inferred once, then passed to every image
    depth = images_module.infer_bit_depth([p12, p8])
    assert depth == 12
    assert torch.allclose(load_image(p12, 32, bit_depth=depth), ref, atol=2 / 255)
    assert torch.allclose(decode([Sample(str(p12), 0)], 32, bit_depth=12)[0][0], ref, atol=2 / 255)
    # an explicit 16 keeps the old reading: 4095 / 65535, a dark picture
    assert float(load_image(p12, 32, bit_depth=16).max()) < 0.07


def test_bit_depth_divides_by_2_to_the_n_minus_1_and_clips(tmp_path):
    a = np.array([[0, 1023], [4095, 60000]], np.uint16)
    Image.fromarray(a).save(tmp_path / "v.png")
    t = load_image(tmp_path / "v.png", 2, bit_depth=12)[0]
    assert torch.allclose(t, torch.tensor([[0, 1023 / 4095], [1.0, 1.0]]))  # 60000 > 4095: clipped
    t = load_image(tmp_path / "v.png", 2, bit_depth=10)[0]
    assert torch.allclose(t, torch.tensor([[0, 1.0], [1.0, 1.0]]))


@pytest.mark.parametrize("hi,depth", [(200, 8), (255, 8), (256, 10), (1023, 10), (3000, 12), (16383, 14), (16384, 16),
                                      (65535, 16)])
def test_infer_bit_depth_is_the_smallest_covering_depth(tmp_path, hi, depth):
    a = np.zeros((4, 4), np.uint16)
    a[0, 0] = hi
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(np.full((4, 4), 255, np.uint8)).save(tmp_path / "b.png")  # 8-bit files do not count
    assert images_module.infer_bit_depth([tmp_path / "a.png", tmp_path / "b.png"]) == depth


def test_infer_bit_depth_of_8bit_images_is_none(tmp_path):
    Image.fromarray(_picture()).save(tmp_path / "g.png")
    Image.fromarray(np.stack([_picture()] * 3, -1)).save(tmp_path / "c.jpg")
    assert images_module.infer_bit_depth([tmp_path / "g.png", tmp_path / "c.jpg"]) is None


def test_infer_bit_depth_reads_an_evenly_spaced_sample(tmp_path, monkeypatch):
    a = np.zeros((4, 4), np.uint16)
    a[0, 0] = 4000
    Image.fromarray(a).save(tmp_path / "a.png")
    paths = [tmp_path / f"{i}.png" for i in range(500)]  # names only: open_image is counted, not run
    opened, real = [], images_module.open_image
    monkeypatch.setattr(images_module, "open_image", lambda p, *a: opened.append(p) or real(tmp_path / "a.png"))
    assert images_module.infer_bit_depth(paths) == 12
    assert len(opened) == 64 and opened[0] == paths[0] and opened[-1] == paths[-1]
    opened.clear()
    images_module.infer_bit_depth(paths)
    assert len(opened) == 64  # and the same 64 again: deterministic


def test_float_tiff_in_0_1(tmp_path):
    a = (_picture() / 255).astype(np.float32)
    Image.fromarray(a).save(tmp_path / "f.tif")
    with Image.open(tmp_path / "f.tif") as im:
        assert im.mode == "F"
    t = _no_warnings(load_image, tmp_path / "f.tif", 64)
    assert torch.allclose(t[0], torch.from_numpy(a), atol=1e-5) and torch.equal(t[0], t[2])
    assert images_module.infer_bit_depth([tmp_path / "f.tif"]) == 0
    assert torch.equal(load_image(tmp_path / "f.tif", 64, bit_depth=0), t)


def test_float_images_outside_0_1_need_a_bit_depth(tmp_path):
    Image.fromarray((_picture() / 255 * 4095).astype(np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(AdlibError) as e:
        images_module.infer_bit_depth([tmp_path / "f.tif"])
    msg = str(e.value)
    assert "f.tif" in msg and "--bit-depth" in msg and "\n" not in msg
    ref = load_image(tmp_path / "f.tif", 32, bit_depth=12)
    assert abs(float(ref.mean()) / float(load_image(tmp_path / "f.tif", 32).mean()) - 1) < 1e-6  # per image: 12


def test_float_image_with_nan_is_a_one_line_error(tmp_path):
    a = np.zeros((8, 8), np.float32)
    a[2, 3] = np.nan
    Image.fromarray(a).save(tmp_path / "nan.tif")
    with pytest.raises(AdlibError, match=r"nan.tif.*NaN/inf.*--skip-bad"):
        load_image(tmp_path / "nan.tif", 8)


def test_bad_bit_depth_value(tmp_path):
    Image.fromarray(_picture()).save(tmp_path / "g.png")
    with pytest.raises(AdlibError, match="--bit-depth"):
        load_image(tmp_path / "g.png", 32, bit_depth=40)


def test_near_constant_image_warns_naming_it(tmp_path):
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "black.png")
    with pytest.warns(UserWarning, match=r"black\.png.*nearly constant"):
        load_image(tmp_path / "black.png", 16)
    # 12-bit data read as 16-bit with a small range: the wrong bit depth is spotted too
    Image.fromarray(np.full((16, 16), 300, np.uint16) + np.eye(16, dtype=np.uint16) * 200).save(tmp_path / "d.png")
    with pytest.warns(UserWarning, match="d.png"):
        load_image(tmp_path / "d.png", 16, bit_depth=16)
    Image.fromarray(_picture()).save(tmp_path / "fine.png")
    _no_warnings(load_image, tmp_path / "fine.png", 32)


# --- orientation and aspect ----------------------------------------------------------------------

def _with_orientation(a: np.ndarray, path, orientation=6, **kw):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(a).save(path, exif=exif, **kw)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_applied(tmp_path, suffix):
    a = np.full((32, 32), 255, np.uint8)
    a[:, :16] = 0  # left half black as stored
    _with_orientation(a, tmp_path / f"r{suffix}", 6)  # 6: shown turned 90 degrees clockwise
    t = load_image(tmp_path / f"r{suffix}", 32)
    assert float(t[:, :14].max()) < 0.05 and float(t[:, 18:].min()) > 0.95  # the left half is now on top


def test_mask_size_is_checked_upright(tmp_path):
    a = np.zeros((20, 40), np.uint8)  # stored 40 wide, 20 high; shown 20 wide, 40 high
    a[:, :10] = 200
    _with_orientation(a, tmp_path / "img.png", 6)
    m = np.zeros((40, 20), np.uint8)
    m[:10] = 1  # the defect at the top of the upright image
    Image.fromarray(m).save(tmp_path / "mask.png")
    got = load_mask(tmp_path / "mask.png", tmp_path / "img.png", 20)
    assert got[:5].all() and not got[5:].any()
    # a mask with its own orientation tag is turned upright too
    _with_orientation(np.ascontiguousarray(np.rot90(m, 1)), tmp_path / "mask2.png", 6)
    assert torch.equal(load_mask(tmp_path / "mask2.png", tmp_path / "img.png", 20), got)


def test_non_square_images_warn_once(tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "_aspect_warned", False, raising=False)
    Image.fromarray(np.stack([_picture(48, 64)] * 3, -1)).save(tmp_path / "wide.png")
    with pytest.warns(UserWarning, match=r"resized to 32×32; aspect ratio 4:3 is not kept"):
        t = load_image(tmp_path / "wide.png", 32)
    assert t.shape == (3, 32, 32)
    _no_warnings(load_image, tmp_path / "wide.png", 32)  # once per process


# --- decompression bombs -------------------------------------------------------------------------

@pytest.mark.parametrize("side", [40, 64])  # 1600 pixels: PIL warns (1x..2x the limit); 4096: PIL refuses
def test_decompression_bomb_is_a_one_line_error(tmp_path, monkeypatch, side):
    Image.fromarray(np.stack([_picture(side, side)] * 3, -1)).save(tmp_path / "big.png")
    Image.fromarray(np.stack([_picture(20, 20)] * 3, -1)).save(tmp_path / "ok.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(AdlibError) as e:
        load_image(tmp_path / "big.png", 32)
    msg = str(e.value)
    assert "big.png" in msg and "ADLIB_MAX_IMAGE_PIXELS" in msg and "\n" not in msg
    both = [Sample(str(tmp_path / "big.png"), 0), Sample(str(tmp_path / "ok.png"), 0)]
    images, kept = decode(both, 32, skip_bad=True)
    assert [s.path for s in kept] == [str(tmp_path / "ok.png")] and images.shape == (1, 3, 32, 32)
    monkeypatch.setenv("ADLIB_MAX_IMAGE_PIXELS", "5000")  # the documented way to allow a trusted file
    assert load_image(tmp_path / "big.png", 32).shape == (3, 32, 32)
