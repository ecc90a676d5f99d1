"""torch.compile vs eager, side by side (issue 21): does `--compile` pay for scoring or training here?

Scoring: the S-step DDIM inversion of the eps-network on a batch of Lite0-shaped features (192 x 16 x 16),
the part `adlib throughput --compile` compiles (the backbone is timed once, eager, for the end-to-end share).
Training: optimizer steps (training_loss, backward, AdamW) of a trainable preset. Eager and compiled run
in interleaved rounds (eager, compiled, eager, ...) so load on a shared machine hits both alike; the first
compiled call (compilation) is timed apart and excluded from the rounds. Medians of the rounds are printed.

    OMP_NUM_THREADS=2 python benchmarks/compile_bench.py --json docs/bench/compile-cpu.json
"""
import argparse
import json
import statistics
import time

import torch

from adlib.features.backbone import FeatureExtractor
from adlib.method.inversion import invert, make_grid
from adlib.models import build_model
from adlib.schedule import training_loss

C, G = 192, 16  # Lite0 features at 256 px


def _model(name):
    torch.manual_seed(0)
    m = build_model(name, C, G)
    if hasattr(m, "fit_base"):
        m.fit_base(torch.randn(64, C, G, G))
    return m


def _rounds(fns: dict, rounds: int) -> dict:
    """Seconds per call of each fn, interleaved, `rounds` times: {name: [seconds, ...]}."""
    out = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[k].append(time.perf_counter() - t0)
    return out


def scoring(name, batch, steps, rounds) -> dict:
    eager = _model(name).eval()
    compiled = torch.compile(eager)
    z, points = torch.randn(batch, C, G, G), make_grid(steps, "paper")

    def run(m):
        with torch.no_grad():
            return invert(m, z, points)
    t0 = time.perf_counter()
    run(compiled)
    compile_s = time.perf_counter() - t0
    diff = float((run(compiled) - run(eager)).abs().max())
    t = _rounds({"eager": lambda: run(eager), "compiled": lambda: run(compiled)}, rounds)
    e, c = statistics.median(t["eager"]), statistics.median(t["compiled"])
    return {"kind": "scoring", "model": name, "batch": batch, "steps": steps, "rounds": rounds,
            "eager_images_s": batch / e, "compiled_images_s": batch / c, "speedup": e / c,
            "compile_seconds": compile_s, "max_abs_diff": diff}


def training(name, batch, iters, rounds) -> dict:
    models = {k: _model(name).train() for k in ("eager", "compiled")}
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in models.items()}
    fwd = {"eager": models["eager"], "compiled": torch.compile(models["compiled"])}
    z, gen = torch.randn(256, C, G, G), torch.Generator().manual_seed(0)

    def step(k):
        for _ in range(iters):
            loss = training_loss(fwd[k], z[torch.randint(0, len(z), (batch,), generator=gen)], gen)
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            opts[k].step()
    t0 = time.perf_counter()
    step("compiled")
    compile_s = time.perf_counter() - t0
    t = _rounds({"eager": lambda: step("eager"), "compiled": lambda: step("compiled")}, rounds)
    e, c = statistics.median(t["eager"]) / iters, statistics.median(t["compiled"]) / iters
    return {"kind": "training", "model": name, "batch": batch, "iters_per_round": iters, "rounds": rounds,
            "eager_it_s": 1 / e, "compiled_it_s": 1 / c, "speedup": e / c, "compile_seconds": compile_s}


def backbone_rate(batch, rounds) -> float:
    ext = FeatureExtractor("lite0", 256).eval()
    x = torch.rand(batch, 3, 256, 256)
    with torch.no_grad():
        ext(x)
        t = _rounds({"b": lambda: ext(x)}, rounds)["b"]
    return batch / statistics.median(t)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--score-models", nargs="+", default=["gaussian", "gaussian+conv", "dit"])
    p.add_argument("--train-models", nargs="+", default=["gaussian+conv", "dit"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=3, help="training steps per round")
    p.add_argument("--json")
    a = p.parse_args()
    rows = [{"kind": "backbone", "model": "lite0 (eager)", "batch": a.batch,
             "images_s": backbone_rate(a.batch, a.rounds)}]
    print(f"backbone lite0 eager: {rows[0]['images_s']:.1f} images/s", flush=True)
    for name in a.score_models:
        r = scoring(name, a.batch, 3, a.rounds)
        rows.append(r)
        print(f"scoring {name} b{a.batch} S=3: eager {r['eager_images_s']:.1f} compiled {r['compiled_images_s']:.1f} "
              f"images/s (x{r['speedup']:.2f}); compile {r['compile_seconds']:.1f} s; max diff {r['max_abs_diff']:.2g}",
              flush=True)
    for name in a.train_models:
        r = training(name, a.batch, a.iters, a.rounds)
        rows.append(r)
        print(f"training {name} b{a.batch}: eager {r['eager_it_s']:.2f} compiled {r['compiled_it_s']:.2f} it/s "
              f"(x{r['speedup']:.2f}); compile {r['compile_seconds']:.1f} s", flush=True)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu",
            "date": time.strftime("%Y-%m-%d"), "rows": rows}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
