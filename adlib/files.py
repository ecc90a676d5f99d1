"""Atomic writes: write a temporary file beside the target, fsync it, then rename it over the target, so an
interrupted run never leaves a half-written file where a finished one is expected (a rename within one
folder is atomic on POSIX and Windows). Folders are replaced by renaming the old one aside first, so a
crash at any moment leaves either the old or the new folder in place, never neither."""
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary path beside `path`; on success it is fsynced and renamed over `path`, with the
    permissions a plain `open(path, "w")` would give (mkstemp's 0600 would hide reports from others)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def current_umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(obj, path) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def atomic_replace_dir(write, path) -> Path:
    """Build a folder with write(tmp_folder), then swap it in: old folder renamed aside, new renamed in, old removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.new."))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide the folder from others
    old = path.with_name(f".{path.name}.old")
    try:
        write(tmp)
        _plain_permissions(tmp)  # e.g. save_pretrained's safetensors file comes out 0600
        if path.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    if old.exists():
        shutil.rmtree(old)
    return path


def _plain_permissions(folder: Path):
    """Give everything under `folder` the permissions a plain write gives (files 0666, folders 0777, less the umask)."""
    mask = current_umask()
    for p in Path(folder).rglob("*"):
        if not p.is_symlink():
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def recover_dir(path) -> Path:
    """If a crash struck between the two renames of `atomic_replace_dir`, put the old folder back."""
    path = Path(path)
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.is_dir():
        os.replace(old, path)
    return path
