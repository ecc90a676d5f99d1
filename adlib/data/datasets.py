"""Datasets as lists of samples: MVTec-AD-layout folders, a user's plain folders and the embedded ELPV cells.

MVTec layout: <cat>/train/good, [<cat>/val/good], <cat>/test/good, <cat>/test/<defect>,
[<cat>/ground_truth/<defect>/<stem>_mask.png]. `good` is normal; masks pair with images by stem, and
an anomalous image's mask must mark something (any nonzero pixel; 0/1 and 0/255 masks both work).
A root of such category folders (`mvtec-root:PATH`) is one dataset for the "unified" setting: one
model on the normals of every category, evaluated per category.
ELPV (Buerhop-Lutz et al. 2018, Deitsch et al. 2019; CC BY-NC-SA 4.0): one category per cell type,
normal = defect probability 0, anomalous = 1; the normals are split 70/10/20 by a seeded permutation.
Protocols (`elpv:poly:dev`, `elpv:poly:test`): the test part (20 % of the normals and every anomalous cell)
is cut in two seeded halves, each class on its own; `dev` scores one half and is where designs are chosen,
`test` scores the other, once, for reported figures. Train and validation are the same under every protocol,
so one run is evaluated under both. `elpv:poly` alone scores the whole test part (figures before the split).
A user's folders (`folder:NORMAL_DIR[:ANOMALOUS_DIR]`, no masks): images found recursively (suffix in any case,
hidden files and folders skipped); the normals are split by a seeded permutation into train / validation / test
(10 % validation, at least 2; 20 % test, at least 1; the rest trains; 5 normals at the least); test = those
normals plus every anomalous image. Without ANOMALOUS_DIR a model trains, but evaluation needs anomalous images.
`:` separates the two folders, so a folder name containing `:` (a Windows drive letter) cannot be given this way.
Relative names that are not folders here are looked up in the data folder (adlib/data/paths.py).
"""
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from adlib.data.images import IMAGE_SUFFIXES, list_images, read_mask
from adlib.data.paths import MVTEC_SUBFOLDERS, resolve
from adlib.errors import AdlibError

ELPV_LICENSE = ("ELPV solar-cell images, CC BY-NC-SA 4.0: Buerhop-Lutz et al. 2018; Deitsch et al. 2019 "
                "(https://github.com/zae-bayern/elpv-dataset)")


@dataclass(frozen=True)
class Sample:
    path: str
    label: int  # 0 normal, 1 anomalous
    defect: str = "good"
    mask: Optional[str] = None
    category: str = ""


@dataclass
class Dataset:
    spec: str
    train: list
    val: list
    test: list
    has_masks: bool
    info: dict = field(default_factory=dict)

    def split_record(self) -> dict:
        """Which file went where: saved with every run."""
        return {"spec": self.spec, **self.info,
                **{k: [s.path for s in getattr(self, k)] for k in ("train", "val", "test")}}

    def categories(self) -> dict:
        """name -> Dataset of that category alone (a single-category dataset is its own only entry)."""
        names = self.info.get("categories")
        if not names:
            return {Path(self.spec.split(":", 1)[-1]).name: self}
        pick = lambda part, c: [s for s in part if s.category == c]
        return {c: Dataset(str(Path(self.spec.split(":", 1)[1]) / c), pick(self.train, c), pick(self.val, c),
                           pick(self.test, c), self.info["has_masks"][c], {"category": c}) for c in names}


def _split(items: list, fractions, seed: int) -> list:
    """Seeded permutation cut into consecutive parts with the given fractions (last takes the rest)."""
    order = np.random.default_rng(seed).permutation(len(items))
    cuts = np.round(np.cumsum(fractions)[:-1] * len(items)).astype(int)
    return [[items[i] for i in sorted(part)] for part in np.split(order, cuts)]


PROTOCOLS = ("dev", "test")
PROTOCOL_SEED = 1234  # fixed, not the split seed: a design chosen on `dev` never sees a `test` image, whatever the split


def protocol_half(test: list, protocol: str) -> list:
    """The `dev` or `test` half of a test part: normals and anomalous halved separately, seeded by PROTOCOL_SEED."""
    if protocol not in PROTOCOLS:
        raise AdlibError(f"unknown protocol {protocol!r}: use elpv:TYPE:dev (choose designs) or elpv:TYPE:test (report)")
    halves = [_split([s for s in test if s.label == y], (0.5, 0.5), PROTOCOL_SEED + y) for y in (0, 1)]
    keep = {s.path for s in halves[0][PROTOCOLS.index(protocol)] + halves[1][PROTOCOLS.index(protocol)]}
    return [s for s in test if s.path in keep]


def load_elpv(cell_type: str, split_seed: int = 0, include_uncertain: bool = False, protocol: str = None) -> Dataset:
    import elpv_dataset
    root = Path(elpv_dataset.__file__).parent / "data"
    names, probs, types = [], [], []
    for line in (root / "labels.csv").read_text().splitlines():
        name, prob, kind = line.split()
        names.append(name), probs.append(float(prob)), types.append(kind)
    train, val, test = [], [], []
    for kind in (("mono", "poly") if cell_type == "all" else (cell_type,)):
        rows = [(n, p) for n, p, k in zip(names, probs, types) if k == kind]
        normal = [Sample(str(root / n), 0) for n, p in rows if p == 0]
        bad = [Sample(str(root / n), 1, f"p={p:.2f}") for n, p in rows if p == 1 or (include_uncertain and p > 0)]
        tr, va, te = _split(normal, (0.7, 0.1, 0.2), split_seed)
        train += tr; val += va; test += te + bad
    info = {"license": ELPV_LICENSE, "split_seed": split_seed, "protocol": "normal p=0, anomalous p=1, 70/10/20"}
    if protocol is not None:
        test = protocol_half(test, protocol)
        info["protocol"] += f"; {protocol} half of the test part (seed {PROTOCOL_SEED})"
    spec = f"elpv:{cell_type}" + (f":{protocol}" if protocol else "")
    return Dataset(spec, train, val, test, has_masks=False, info=info)


def _find_mask(gt: Path, defect: str, stem: str) -> Optional[Path]:
    for name in (f"{stem}_mask", stem):
        for suffix in IMAGE_SUFFIXES:
            if (p := gt / defect / (name + suffix)).is_file():
                return p
    return None


def load_mvtec(folder, split_seed: int = 0, val_fraction: float = 0.1) -> Dataset:
    root = Path(folder)
    good = root / "train" / "good"
    if not good.is_dir() or not (train := list_images(good)):
        raise AdlibError(f"{good} is missing or has no images: a category folder needs normal training "
                         f"images in train/good (MVTec layout, see README)")
    explicit_val = (root / "val" / "good").is_dir() and bool(list_images(root / "val" / "good"))
    if explicit_val:
        val = list_images(root / "val" / "good")
    else:
        if len(train) < 2:
            raise AdlibError(f"{good} has one image: at least 2 are needed to hold one out for validation")
        n_val = max(1, int(round(val_fraction * len(train))))
        train, val = _split(train, (1 - n_val / len(train), n_val / len(train)), split_seed)
    test_dir, gt = root / "test", root / "ground_truth"
    if not test_dir.is_dir():
        raise AdlibError(f"{test_dir} is missing: a category folder needs test/good and test/<defect> folders")
    has_masks = gt.is_dir()
    test = []
    for d in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        for img in list_images(d):
            if d.name == "good":
                test.append(Sample(str(img), 0))
                continue
            mask = _find_mask(gt, d.name, img.stem) if has_masks else None
            if has_masks and mask is None:
                raise AdlibError(f"anomalous image {img} has no mask {gt / d.name / (img.stem + '_mask.png')} while "
                                 f"other images have masks: add it, or remove {gt} for image-level metrics only")
            if mask is not None and not read_mask(mask).any():  # only anomalous images' masks are read
                raise AdlibError(f"mask {mask} of anomalous image {img} is empty (all zero): mark the defect "
                                 f"in it (any nonzero pixel is anomalous) or remove the image")
            test.append(Sample(str(img), 1, d.name, str(mask) if mask else None))
    if not any(s.label == 0 for s in test) or not any(s.label == 1 for s in test):
        raise AdlibError(f"{test_dir} needs both test/good and at least one test/<defect> folder with images")
    info = {"split_seed": split_seed, "val": "val/good" if explicit_val else f"{val_fraction:.0%} of train/good"}
    train, val = [Sample(str(p), 0) for p in train], [Sample(str(p), 0) for p in val]
    return Dataset(str(root), train, val, test, has_masks, info)


def category_folders(root) -> list:
    """The category folders directly under `root`: those with a train/ folder, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise AdlibError(f"--data mvtec-root:{root}: no such folder; give the folder that holds the category "
                         f"folders (e.g. mvtec_anomaly_detection/ with bottle/, cable/, ...)")
    found = sorted(p for p in root.iterdir() if (p / "train").is_dir())
    if not found:
        raise AdlibError(f"--data mvtec-root:{root}: no category folders (CATEGORY/train/good) in it; "
                         f"for a single category use mvtec:PATH_TO_CATEGORY")
    return found


def load_root(root, split_seed: int = 0) -> Dataset:
    """All categories of an MVTec-layout root as one dataset (the unified setting); samples know their category."""
    parts = {p.name: load_mvtec(p, split_seed) for p in category_folders(root)}
    info = {"split_seed": split_seed, "categories": list(parts),
            "has_masks": {c: d.has_masks for c, d in parts.items()}}
    merged = {k: [replace(s, category=c) for c, d in parts.items() for s in getattr(d, k)]
              for k in ("train", "val", "test")}
    return Dataset(f"mvtec-root:{root}", **merged, has_masks=all(info["has_masks"].values()), info=info)


MIN_FOLDER_NORMALS = 5  # folder:: 2 train, 2 validation (what calibration needs) and 1 test normal at the least


def images_under(folder: Path, skip: Optional[Path] = None) -> list:
    """Image files anywhere under `folder` (suffix in any case), sorted by their path relative to it.

    Hidden files and folders (a leading dot: .DS_Store, ._x.png, .ipynb_checkpoints) are skipped, and so is
    the folder `skip` (the anomalous folder when it lies inside the normal one). Linked folders are followed once.
    """
    skip = os.path.realpath(skip) if skip is not None else None
    seen, found = set(), []
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen or real == skip:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(top) / f for f in files
                  if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES and (Path(top) / f).is_file()]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def load_folder(normal, anomalous=None, split_seed: int = 0, spec: Optional[str] = None) -> Dataset:
    """A folder of normal images and, optionally, one of anomalous images (no masks): `folder:NORMAL[:ANOMALOUS]`.

    The normals are split by a seeded permutation into train / validation / test: 10 % validation (at least 2),
    20 % test (at least 1), the rest trains. Test = those held-out normals plus every anomalous image, whose
    `defect` is its first subfolder under ANOMALOUS (or ANOMALOUS's own name for images directly in it).
    """
    normal, anomalous = Path(normal), (Path(anomalous) if anomalous is not None else None)
    spec = spec or f"folder:{normal}" + (f":{anomalous}" if anomalous is not None else "")
    for folder, what in ((normal, "normal"), (anomalous, "anomalous")):
        if folder is not None and not folder.is_dir():
            raise AdlibError(f"--data {spec!r}: the {what} folder {folder} does not exist")
    if anomalous is not None and os.path.realpath(normal) == os.path.realpath(anomalous):
        raise AdlibError(f"--data {spec!r}: the normal and anomalous folders are the same ({normal}): give two folders")
    inner = lambda a, b: b is not None and Path(os.path.realpath(b)).is_relative_to(os.path.realpath(a))
    good = images_under(normal, skip=anomalous if inner(normal, anomalous) else None)
    if len(good) < MIN_FOLDER_NORMALS:
        raise AdlibError(f"{normal} holds {len(good)} normal image(s) ({', '.join(IMAGE_SUFFIXES)}, found recursively, "
                         f"hidden files skipped): folder: needs at least {MIN_FOLDER_NORMALS} to split into train, "
                         f"validation and test normals; add more normal images there")
    bad = []
    if anomalous is not None:
        bad = images_under(anomalous, skip=normal if inner(anomalous, normal) else None)
        if not bad:
            raise AdlibError(f"{anomalous} holds no images ({', '.join(IMAGE_SUFFIXES)}, found recursively, hidden "
                             f"files skipped): put the anomalous images there, or give folder:{normal} alone to train only")
    n = len(good)
    n_val, n_test = max(2, round(0.1 * n)), max(1, round(0.2 * n))
    tr, va, te = _split([Sample(str(p), 0) for p in good], ((n - n_val - n_test) / n, n_val / n, n_test / n), split_seed)
    defect = lambda p: (p.relative_to(anomalous).parts[:-1] or (anomalous.resolve().name,))[0]
    test = te + [Sample(str(p), 1, defect(p)) for p in bad]
    info = {"split_seed": split_seed, "normal": str(normal.resolve()),
            "anomalous": str(anomalous.resolve()) if anomalous is not None else None,
            "protocol": f"{n} normals split {len(tr)}/{len(va)}/{len(te)} (train/val/test, seeded); "
                        f"test = held-out normals + {len(bad)} anomalous"}
    return Dataset(spec, tr, va, test, has_masks=False, info=info)


SPECS = ("elpv:mono|poly|all, mvtec:PATH_TO_CATEGORY, mvtec-root:PATH_TO_CATEGORIES, "
         "folder:NORMAL_DIR[:ANOMALOUS_DIR], or the path of an existing category folder")


def load_spec(spec: str, split_seed: int = 0) -> Dataset:
    """SPEC: `elpv:mono|poly|all[:dev|test]`, `mvtec:PATH_TO_CATEGORY`, `mvtec-root:PATH` (all categories in
    it), `folder:NORMAL_DIR[:ANOMALOUS_DIR]` (a user's folders, no masks), or a path to a category folder.
    Relative folder names that do not exist here are looked up in the data folder (adlib/data/paths.py)."""
    if spec.startswith("elpv:"):
        kind, _, protocol = spec.split(":", 1)[1].partition(":")
        if kind not in ("mono", "poly", "all") or (protocol and protocol not in PROTOCOLS):
            raise AdlibError(f"unknown --data {spec!r}: ELPV categories are elpv:mono, elpv:poly, elpv:all, each "
                             f"optionally :dev (choose designs) or :test (report), e.g. elpv:poly:dev")
        return load_elpv(kind, split_seed, protocol=protocol or None)
    if spec.startswith("mvtec-root:"):
        root = resolve(spec.split(":", 1)[1], spec, fix="give the folder that holds the category folders "
                       "(e.g. mvtec_anomaly_detection/ with bottle/, cable/, ...)")
        return load_root(root, split_seed)
    if spec.startswith("folder:"):
        names = spec.split(":")[1:]
        usage = ("use folder:NORMAL_DIR or folder:NORMAL_DIR:ANOMALOUS_DIR (':' separates the two folders, so a "
                 "folder name cannot contain ':')")
        if len(names) > 2:
            raise AdlibError(f"--data {spec!r}: {usage}")
        folders = [resolve(name, spec, fix=usage) for name in names]
        return load_folder(folders[0], folders[1] if len(folders) > 1 else None, split_seed, spec=spec)
    path = spec.split(":", 1)[1] if spec.startswith("mvtec:") else spec
    return load_mvtec(resolve(path, spec, MVTEC_SUBFOLDERS, fix=f"unknown SPEC or missing folder: use {SPECS}"),
                      split_seed)


def with_val_share(data: Dataset, share: float, seed: int = 0) -> Dataset:
    """The dataset with its train and validation normals re-split by a seeded permutation: `share` of them (at
    least 2) validate, the rest train; the test part is untouched. share < 0: the dataset's own split, as is.
    A dataset with its own val/good folder keeps it (`--val-share` is refused there)."""
    if share is None or share < 0:
        return data
    if data.info.get("val") == "val/good":
        raise AdlibError(f"--val-share {share}: {data.spec} has its own val/good folder, which is kept as the "
                         f"validation set; drop --val-share (or move those images into train/good)")
    if not 0 < share < 1:
        raise AdlibError(f"--val-share {share} must be between 0 and 1 (e.g. 0.2), or -1 for the dataset's own split")
    pool = sorted(data.train + data.val, key=lambda s: s.path)
    n_val = max(2, round(share * len(pool)))
    if n_val >= len(pool):
        raise AdlibError(f"--val-share {share} leaves no training image of {len(pool)} normals: use a smaller share")
    train, val = _split(pool, (1 - n_val / len(pool), n_val / len(pool)), seed)
    return replace(data, train=train, val=val, info={**data.info, "val_share": share})
