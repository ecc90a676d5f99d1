"""What the `adlib` command-line tests share: tiny training options, the one-line-error check, a private
feature cache per test and a small generated category (tests/test_cli.py, tests/test_cli_models.py)."""
import shutil

import pytest

from adlib.cli import main
from adlib.data import make_mini_mvtec

TINY = ["--iters", "4", "--batch-size", "4", "--image-size", "64"]


def _visible_lines(err: str) -> list:
    """Non-empty stderr lines as a terminal shows them (progress bars redraw with \\r and are cleared),
    without the kit's one-line warnings (e.g. few validation images), which come before an error."""
    lines = (line.rsplit("\r", 1)[-1].strip() for line in err.split("\n"))
    return [line for line in lines if line and not line.startswith("warning: ")]


def _fails(capsys, argv, *needles) -> str:
    """main(argv) exits with 2 and one `error:` line on stderr containing every needle; returns it."""
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert "Traceback" not in err
    lines = _visible_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    return lines[0]


def _train(data, out, *extra):
    return ["train", "--data", str(data), "--out", str(out), *TINY, *extra]



@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    # Each test gets its own feature cache: the copies of the data below are byte-identical to each
    # other, the cache key hashes image bytes only, and a hit keeps only the samples whose paths match
    # those the entry was made with -- none, for a copy at another path.
    monkeypatch.setenv("ADLIB_CACHE", str(tmp_path / "feature-cache"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 24 normal training images: 2 held out for validation (the fewest calibration accepts)
    return make_mini_mvtec(tmp_path_factory.mktemp("cli-data") / "cat", seed=7, size=64, n_train=24,
                           n_test_good=2, n_test_per_defect=1)


@pytest.fixture
def cat(data, tmp_path):
    """A private, writable copy of the category."""
    return shutil.copytree(data, tmp_path / "cat")
