"""Backbone features of samples, cached on disk one entry per image and reused while nothing changed.

Entry key = sha256(FEATURE_VERSION | sha256 of the image's bytes | backbone | image size | weights
identity | bit depth [| precision, for bf16 only]): changing any of them gives a new entry, and adding an image to a list extracts
only that image. Entries live in <cache>/<key[:2]>/<key>.safetensors, written atomically (temp file in
the same folder, fsync, os.replace). hashes.json maps (absolute path, size, mtime_ns) -> content hash,
so a warm call reads no image at all. The cache is capped at $ADLIB_CACHE_MAX_MB (default 2048):
after a write, least-recently-used entries go first (a hit touches its entry's mtime).
fp32 features from the onnxruntime engine (adlib/features/engine.py, the CPU default where installed) share entries
with torch fp32 ones: they differ by float32 rounding only (max |dz| 1.5e-4 on ELPV; scores within 1e-4), as torch's own do
across thread counts and machines, so the key names the weights, not the engine that ran them.
"""
import hashlib
import json
import os
import tempfile
from contextlib import nullcontext
from pathlib import Path

import torch
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from adlib.data.images import load_image
from adlib.errors import AdlibError
from adlib.files import current_umask

FEATURE_VERSION = 3
INDEX = "hashes.json"
MAX_MB_ENV, DEFAULT_MAX_MB = "ADLIB_CACHE_MAX_MB", 2048


def cache_dir() -> Path:
    """$ADLIB_CACHE or ~/.cache/adlib/features."""
    return Path(os.environ.get("ADLIB_CACHE", Path.home() / ".cache" / "adlib" / "features"))


def cache_cap() -> int:
    """The cache's size cap in bytes: $ADLIB_CACHE_MAX_MB megabytes (MiB), 2048 unless set."""
    value = os.environ.get(MAX_MB_ENV, str(DEFAULT_MAX_MB))
    try:
        mb = float(value)
    except ValueError:
        mb = -1.0
    if not mb >= 0:  # also refuses nan
        raise AdlibError(f"{MAX_MB_ENV}={value!r} is not a size in megabytes: set it to e.g. 2048")
    return int(mb * 2 ** 20)


def _write_atomic(data: bytes, path: Path):
    """Temp file in the target's folder, fsync, os.replace: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 would hide a run's stats from others
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_save(tensors: dict, path: Path, metadata: dict = None):
    """safetensors file written atomically (see _write_atomic)."""
    _write_atomic(save(tensors, metadata=metadata), Path(path))


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _content_hashes(paths) -> list:
    """sha256 of each file's bytes (None if unreadable), reusing hashes.json while path, size and mtime agree."""
    index_path = cache_dir() / INDEX
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}  # missing or damaged: rebuilt as files are hashed
    if not isinstance(index, dict):
        index = {}
    out, changed = [], False
    for p in paths:
        p = os.path.abspath(p)
        try:
            st = os.stat(p)
            known = index.get(p)
            if not (isinstance(known, list) and known[:2] == [st.st_size, st.st_mtime_ns]):
                index[p], changed = [st.st_size, st.st_mtime_ns, _hash_file(p)], True
            out.append(index[p][2])
        except OSError:
            out.append(None)  # missing / unreadable: decoding reports it
    if changed:
        _write_atomic(json.dumps(index).encode(), index_path)
    return out


def _entry(content: str, extractor, bit_depth, precision: str = "fp32") -> Path:
    """fp32 entries keep the key they had before precision existed; bf16 ones get `|bf16` (never mixed)."""
    weights = getattr(extractor, "weights_id", extractor.backbone)
    tail = "" if precision == "fp32" else f"|{precision}"
    key = hashlib.sha256(f"v{FEATURE_VERSION}|{content}|{extractor.backbone}|{extractor.image_size}|"
                         f"{weights}|{bit_depth}{tail}".encode()).hexdigest()
    return cache_dir() / key[:2] / f"{key}.safetensors"


def _load_entry(path: Path):
    """The cached features, or None when absent or unreadable (a damaged entry is a miss, then rewritten)."""
    try:
        z = load_file(path)["features"]
        os.utime(path)  # least-recently-used eviction goes by mtime
        return z
    except Exception:
        return None


def _entries() -> list:
    """(path, size, mtime) of every cache entry (sharded ones, and whole-list files of the old layout)."""
    root, out = cache_dir(), []
    if not root.is_dir():
        return out
    for folder in [root] + [Path(e.path) for e in os.scandir(root) if len(e.name) == 2 and e.is_dir()]:
        for e in os.scandir(folder):
            if e.name.endswith(".safetensors") and e.is_file():
                st = e.stat()
                out.append((Path(e.path), st.st_size, st.st_mtime))
    return out


def _evict(cap: int):
    """Remove least-recently-used entries until the cache holds at most `cap` bytes."""
    entries = sorted(_entries(), key=lambda e: e[2])
    total = sum(e[1] for e in entries)
    for path, size, _ in entries:
        if total <= cap:
            break
        path.unlink(missing_ok=True)
        total -= size


def cache_info() -> dict:
    """folder, entries (count), bytes (on disk) and cap (bytes, $ADLIB_CACHE_MAX_MB) of the feature cache."""
    entries = _entries()
    return {"folder": str(cache_dir()), "entries": len(entries), "bytes": sum(e[1] for e in entries),
            "cap": cache_cap()}


def cache_clear() -> int:
    """Delete every cache entry, the hash index and any temp file a killed write left; returns the entries removed."""
    entries = _entries()
    for path, _, _ in entries:
        path.unlink(missing_ok=True)
    for path in [cache_dir() / INDEX] + (list(cache_dir().rglob("*.tmp")) if cache_dir().is_dir() else []):
        path.unlink(missing_ok=True)
    return len(entries)


def decode(samples, image_size: int, skip_bad: bool = False, bit_depth=None):
    """Decoded images (N x 3 x S x S) and the samples kept (all of them unless skip_bad drops some)."""
    images, kept = [], []
    for s in samples:
        try:
            images.append(load_image(s.path, image_size, bit_depth=bit_depth))
            kept.append(s)
        except AdlibError:
            if not skip_bad:
                raise
    return (torch.stack(images) if images else torch.empty(0, 3, image_size, image_size)), kept


def extract(extractor, samples, batch_size: int = 16, skip_bad: bool = False, desc: str = "features",
            use_cache: bool = True, device: str = "cpu", bit_depth=None, precision: str = "fp32"):
    """Features N x C x h x w (float32, CPU) and the samples they belong to, in sample order.

    precision "bf16": the backbone runs under bf16 autocast (adlib/method/precision.py says when), and its
    features are cached apart from fp32 ones.

    Cached images are loaded, the others decoded and extracted in batches. Undecodable images are an
    error, or skipped (and not cached) with skip_bad; NaN/inf features are an error.
    """
    samples = list(samples)
    paths = [None] * len(samples)
    if use_cache:
        paths = [_entry(h, extractor, bit_depth, precision) if h else None
                 for h in _content_hashes(s.path for s in samples)]
    feats = [_load_entry(p) if p else None for p in paths]
    misses = [i for i, z in enumerate(feats) if z is None]
    for b in tqdm(range(0, len(misses), batch_size), desc=desc, unit="batch", leave=False, disable=not misses):
        batch = misses[b:b + batch_size]
        images, ok = decode([samples[i] for i in batch], extractor.image_size, skip_bad, bit_depth)
        if not ok:
            continue
        with torch.autocast(torch.device(device).type, torch.bfloat16) if precision == "bf16" else nullcontext():
            z = extractor(images.to(device)).float().cpu()
        ok_ids = {id(s) for s in ok}  # decode keeps order; skip_bad may have dropped some
        done = [i for i in batch if id(samples[i]) in ok_ids]
        bad = ~torch.isfinite(z).flatten(1).all(1)
        if bad.any():
            names = [samples[done[j]].path for j in torch.nonzero(bad).flatten()[:3]]
            raise AdlibError(f"NaN/inf features for {names}: the image file is probably corrupt; remove it")
        for i, zi in zip(done, z):
            feats[i] = zi.contiguous()
            if paths[i] is not None:
                atomic_save({"features": feats[i]}, paths[i])
    if use_cache and misses:
        _evict(cache_cap())
    kept = [s for s, z in zip(samples, feats) if z is not None]
    if not kept:
        raise AdlibError(f"no decodable images among {len(samples)} in the {desc} split: check the data folder")
    return torch.stack([z for z in feats if z is not None]), kept


def load_file_metadata(path) -> dict:
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()
