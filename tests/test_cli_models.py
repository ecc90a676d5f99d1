"""`adlib train --model PRESET --model-kwargs JSON`: every preset listed in the help, settings reaching the model
and the saved config, and malformed or unknown settings refused in one line before anything is written."""
import json

import pytest

from adlib.cli import main
from cli_support import _fails, _private_cache, _train, cat, data  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: torch on one thread


def test_model_help_lists_every_preset():
    from adlib.cli.common import MODEL_PRESETS
    from adlib.models import PRESETS
    assert sorted(MODEL_PRESETS.split(" | ")) == sorted(PRESETS)


def test_model_kwargs_reach_the_model_and_the_saved_config(cat, tmp_path, capsys):
    out = tmp_path / "run"
    kwargs = '{"residual_kwargs": {"hidden": 32, "depth": 1}, "base_kwargs": {"shrinkage": 0.2}}'
    assert main([*_train(cat, out, "--model", "gaussian+conv", "--model-kwargs", kwargs)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"] == "gaussian+conv" and cfg["model_kwargs"] == json.loads(kwargs)
    model = json.loads((out / "ema" / "config.json").read_text())
    assert model["residual_kwargs"] == {"hidden": 32, "depth": 1} and model["base_kwargs"]["shrinkage"] == 0.2


@pytest.mark.parametrize("text, needle", [("{bad", "is not JSON"), ("[1, 2]", "must be a JSON object")])
def test_model_kwargs_that_are_not_a_json_object(cat, tmp_path, capsys, text, needle):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main([*_train(cat, out, "--model-kwargs", text)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--model-kwargs" in err and needle in err and not out.exists()


def test_model_kwargs_the_model_does_not_take(cat, tmp_path, capsys):
    out = tmp_path / "run"
    _fails(capsys, [*_train(cat, out, "--model", "gaussian+conv", "--model-kwargs", '{"residual_kwargs": {"nope": 1}}')],
           "nope", "--model gaussian+conv")
    assert not out.exists()
