"""Extract backbone features for a list of samples, cached on disk and reused while nothing changed.

The cache key hashes every image's bytes, the backbone, the image size and FEATURE_VERSION, so any
change to one of them gives a new entry. Entries are written atomically (temp file + rename).
"""
import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .data.images import load_image
from .errors import AdlibError

FEATURE_VERSION = 2


def cache_dir() -> Path:
    """$ADLIB_CACHE or ~/.cache/adlib/features."""
    return Path(os.environ.get("ADLIB_CACHE", Path.home() / ".cache" / "adlib" / "features"))


def _key(samples, backbone: str, image_size: int, skip_bad: bool) -> str:
    h = hashlib.sha256(f"v{FEATURE_VERSION}|{backbone}|{image_size}|{skip_bad}".encode())
    for s in samples:
        h.update(hashlib.sha1(Path(s.path).read_bytes()).digest())
    return h.hexdigest()[:32]


def atomic_save(tensors: dict, path: Path, metadata: dict = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def decode(samples, image_size: int, skip_bad: bool = False):
    """Decoded images (N x 3 x S x S) and the samples kept (all of them unless skip_bad drops some)."""
    images, kept = [], []
    for s in samples:
        try:
            images.append(load_image(s.path, image_size))
            kept.append(s)
        except AdlibError:
            if not skip_bad:
                raise
    return (torch.stack(images) if images else torch.empty(0, 3, image_size, image_size)), kept


def extract(extractor, samples, batch_size: int = 16, skip_bad: bool = False, desc: str = "features",
            use_cache: bool = True, device: str = "cpu"):
    """Features N x C x h x w (float32, CPU) and the samples they belong to; NaN/inf is an error."""
    path = cache_dir() / f"{_key(samples, extractor.backbone, extractor.image_size, skip_bad)}.safetensors"
    if use_cache and path.is_file():
        kept = json.loads(load_file_metadata(path)["kept"])  # indices into `samples` (the key fixes their order)
        return load_file(path)["features"], [samples[i] for i in kept]
    feats, kept, index = [], [], {id(s): i for i, s in enumerate(samples)}
    for i in tqdm(range(0, len(samples), batch_size), desc=desc, unit="batch", leave=False):
        images, ok = decode(samples[i:i + batch_size], extractor.image_size, skip_bad)
        if ok:
            feats.append(extractor(images.to(device)).float().cpu())
            kept += ok
    if not kept:
        raise AdlibError(f"no decodable images among {len(samples)} in the {desc} split: check the data folder")
    feats = torch.cat(feats)
    if not torch.isfinite(feats).all():
        bad = [kept[i].path for i in torch.nonzero(~torch.isfinite(feats).flatten(1).all(1)).flatten()[:3]]
        raise AdlibError(f"NaN/inf features for {bad}: the image file is probably corrupt; remove it")
    if use_cache:
        atomic_save({"features": feats.contiguous()}, path, {"kept": json.dumps([index[id(s)] for s in kept])})
    return feats, kept


def load_file_metadata(path) -> dict:
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()
