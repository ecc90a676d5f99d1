"""`adlib export`'s agreement with torch, stated the same way everywhere (issue 20): the tolerance constants, the
README and the command's message (which printed a 7.3e-04 "match" while the README promised 1e-4)."""
from pathlib import Path

import pytest

from adlib.cli import main
from adlib.deploy import export

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_states_the_tolerances_the_check_uses():
    text = " ".join(README.read_text().split())
    assert export.tolerance_text() == "maps within 1e-4 + 1e-4 × |value|, scores within 1e-3 + 1e-3 × |value|"
    assert export.tolerance_text() in text
    assert "within 1e-4 on the maps" not in text  # the old claim, without the relative part


def test_the_export_message_gives_the_differences_beside_the_tolerance(tiny_run, tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnx")
    diffs = {"map_abs": 7.3e-4, "pixel_map_abs": 6.1e-4, "score_abs": 2e-5}
    meta = {"image_size": "128", "score": "local-top", "steps": "3", "grid": "paper", "threshold": "1.5", "fpr": "0.05"}

    def fake_export(run, out, *args, **kw):
        Path(out).write_bytes(b"onnx")
        return {"metadata": meta, "check": diffs, "seconds": 1.0}
    monkeypatch.setattr(export, "export_onnx", fake_export)
    assert main(["export", str(tiny_run.path), "--out", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    assert export.tolerance_text() in out and "7.3e-04 on the map" in out, out
    assert "matches torch within 7.3e-04" not in out
