"""Atomic writes: the target appears whole or not at all, and with the permissions a plain write would give."""
import os
import stat

import pytest

from adlib.files import atomic_path, atomic_replace_dir, atomic_write_text


def test_written_files_get_the_umask_permissions_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.read_text() == "<html></html>"


def test_an_interrupted_write_leaves_neither_the_target_nor_a_temporary_file(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_replaced_folders_get_the_umask_permissions_not_mkdtemps_0700(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_replace_dir(lambda d: (d / "a.txt").write_text("a"), tmp_path / "model")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755 and (path / "a.txt").read_text() == "a"
