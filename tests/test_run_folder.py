"""What `adlib train --out` writes and accepts (issue 20): a folder of the user's own files is refused (not an
adlib run; only a real run gets the --resume hint), a closed-form model is stored once (no ema/ copy, loss.csv,
checkpoint or iteration count) and still opens with the default `ema` weights, and every file is readable as
the umask allows (not 0600)."""
import json
import os
import shutil
import stat

import pytest

from adlib.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: torch on one thread


def _train(mini, out, *extra):
    return ["train", "--data", str(mini), "--out", str(out), "--image-size", "128", *extra]


def _error(capsys, argv) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("error: ")]
    assert rc == 2 and len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def fitted(mini, tmp_path_factory):
    """A `--model gaussian` run (the default: fitted in closed form), trained under umask 022."""
    from adlib import RunConfig, train_run
    old = os.umask(0o022)
    try:
        run = train_run(RunConfig(data=str(mini), image_size=128, model="gaussian"),
                        tmp_path_factory.mktemp("fitted") / "run", progress=False)
    finally:
        os.umask(old)
    return run


def test_train_refuses_a_folder_of_the_users_own_files(mini, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    line = _error(capsys, _train(mini, out))
    assert "not an adlib run" in line and str(out) in line and "new folder" in line and "--resume" not in line
    assert [p.name for p in out.iterdir()] == ["notes.txt"]  # nothing written beside the user's file


def test_a_users_own_config_json_is_not_a_run_to_resume(mini, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"data": "my camera", "exposure": 3}))
    for extra in ((), ("--resume",)):
        line = _error(capsys, _train(mini, out, *extra))
        assert "not an adlib run" in line and "--resume" not in line
    assert json.loads((out / "config.json").read_text()) == {"data": "my camera", "exposure": 3}


def test_a_real_run_gets_the_resume_hint(fitted, mini, tmp_path, capsys):
    line = _error(capsys, _train(mini, fitted.path))
    assert "already holds a run" in line and "--resume" in line


def test_an_empty_existing_folder_is_fine(tmp_path):
    from adlib.runs.run import check_out
    check_out(tmp_path)  # no error
    check_out(tmp_path / "new")


def test_a_closed_form_model_is_stored_once_with_no_iterations(fitted):
    names = {p.name for p in fitted.path.iterdir()}
    assert "model" in names and not names & {"ema", "loss.csv", "checkpoint.pt", "snapshots"}, names
    timing = json.loads((fitted.path / "timing.json").read_text())
    assert timing["iters"] == 0 and timing["closed_form"] is True


def test_a_closed_form_run_opens_with_the_default_ema_weights_and_scores_as_its_model(fitted, mini):
    import torch
    from adlib import Run
    from adlib.data import load_spec
    from adlib.runs.run import finished, fingerprint, weights_dir
    assert weights_dir(fitted.path) == fitted.path / "model" and finished(fitted.path)
    ema, model = Run(fitted.path), Run(fitted.path, "model")
    assert ema.weights == "ema"
    z, _ = ema.features(load_spec(str(mini)).test[:4])
    assert torch.equal(ema.invert(z), model.invert(z))
    assert fingerprint(ema, "ema") == fingerprint(model, "model")  # the same files, not an empty ema/


def test_the_fingerprint_of_a_closed_form_run_covers_its_weights(fitted, tmp_path):
    from adlib import Run
    from adlib.runs.run import fingerprint
    copy = shutil.copytree(fitted.path, tmp_path / "run")
    before = fingerprint(Run(copy), "ema")
    weights = next((copy / "model").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert fingerprint(Run(copy), "ema") != before


def test_a_trained_run_without_ema_is_still_unfinished(tiny_run, tmp_path):
    from adlib import Run
    from adlib.errors import AdlibError
    from adlib.runs.run import finished
    copy = shutil.copytree(tiny_run.path, tmp_path / "run")
    assert (copy / "ema").is_dir() and finished(copy)
    shutil.rmtree(copy / "ema")  # a trained model's EMA is not its raw weights: no fallback
    assert not finished(copy)
    with pytest.raises(AdlibError, match="did not finish"):
        Run(copy)


def test_every_file_a_run_writes_is_readable_as_the_umask_allows(fitted):
    modes = {p.relative_to(fitted.path).as_posix(): stat.S_IMODE(p.stat().st_mode)
             for p in fitted.path.rglob("*")}
    assert "stats.safetensors" in modes and any(n.endswith(".safetensors") and n.startswith("model/") for n in modes)
    wrong = {n: oct(m) for n, m in modes.items() if m != (0o755 if (fitted.path / n).is_dir() else 0o644)}
    assert not wrong, wrong
