"""Several processes: a real 2-process DDP run on CPU (gloo) through `accelerate launch`, and its guards."""
import hashlib
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from adlib.data import load_mvtec
from adlib.errors import AdlibError
from adlib.runs.run import Run
import adlib.runs.run as run_mod


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_training_on_cpu(mini, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "-m", "adlib", "train", "--data", str(mini), "--out", str(out),
           "--device", "cpu", "--image-size", "128", "--iters", "120", "--batch-size", "16", "--lr", "3e-3", "--model", "mlp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(2 process(es))" in done.stdout  # printed once, by the main process

    timing = json.loads((out / "timing.json").read_text())
    assert timing["processes"] == 2 and timing["effective_batch"] == 16
    split = json.loads((out / "split.json").read_text())  # the files kept: what every process compared
    assert timing["split_sha256"] == hashlib.sha256(json.dumps(split, sort_keys=True).encode()).hexdigest()
    assert split["train"] == load_mvtec(mini).split_record()["train"] and split["skipped_files"] == []

    losses = [float(line.split(",")[1]) for line in (out / "loss.csv").read_text().splitlines()[1:]]
    assert len(losses) == 120 and sum(losses[-20:]) < 0.9 * sum(losses[:20])
    assert len(list(out.rglob("checkpoint*"))) == 1 and not list(out.rglob("*.tmp"))  # one writer
    assert torch.load(out / "checkpoint.pt", weights_only=True)["iter"] == 120

    run = Run(out)  # and it loads and scores in a single process
    z, _ = run.features(load_mvtec(mini).test[:4], "test")
    s = run.scores(z)
    assert all(map(lambda v: torch.isfinite(torch.as_tensor(v)).all(), (s["nll"], s["diff"])))


def test_processes_with_different_splits_are_refused(monkeypatch):
    class TwoProcesses:
        num_processes = 2
    monkeypatch.setattr("accelerate.utils.gather_object", lambda xs: xs + ["another digest"])
    with pytest.raises(AdlibError, match="different train/val/test splits"):
        run_mod._same_split_everywhere(TwoProcesses(), {"train": ["a.png"]})


def test_effective_batch_must_split_evenly(monkeypatch, tmp_path):
    from adlib.runs.config import RunConfig
    from adlib.runs.train import fit
    import accelerate
    monkeypatch.setattr(accelerate.Accelerator, "num_processes", property(lambda self: 3))
    with pytest.raises(AdlibError, match="multiple of 3"):
        fit(RunConfig(model="mlp", iters=2, batch_size=8, device="cpu"), torch.zeros(4, 8, 2, 2), tmp_path,
            progress=False)
