"""Whitening speed: a batched triangular solve (the kit's `standardize` before 2026-12-05) vs `standardize` now (a
multiply by the precomputed L^-1 on contiguous features), side by side in one process, on a random Gaussian of
the kit's size (256 positions x 192 channels, 16 x 16 maps).

    python benchmarks/whitening_speed.py [--threads 2] [--rounds 7]

Prints images/s (median of the rounds, interleaved) per batch size, the ratio, and the largest difference
between the two outputs relative to their scale.
"""
import argparse
import time

import numpy as np
import torch

from adlib.features.standardize import standardize


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    p, c = 256, 192
    a = torch.randn(p, c, c, generator=g, dtype=torch.float64)
    chol = torch.linalg.cholesky(a @ a.transpose(1, 2) / c + 0.01 * torch.eye(c, dtype=torch.float64)).float()
    stats = {"mean": torch.randn(p, 1, c, generator=g), "chol": chol}

    def solve(z):  # the previous standardize
        x = z.flatten(2).permute(2, 1, 0) - stats["mean"].transpose(1, 2)
        return torch.linalg.solve_triangular(chol, x, upper=False).permute(2, 1, 0).reshape(z.shape)

    print(f"{p} positions x {c} channels, {args.threads} threads, median of {args.rounds} interleaved rounds")
    print("| images per batch | solve images/s | standardize (L^-1 multiply) images/s | ratio | max relative difference |")
    print("|---|---|---|---|---|")
    for n in (16, 32, 64):
        z = torch.randn(n, c, 16, 16, generator=g)
        ways = {"solve": lambda: solve(z), "inv": lambda: standardize(z, stats)}
        times = {k: [] for k in ways}
        for f in ways.values():
            f()  # warm-up
        for _ in range(args.rounds):
            for k, f in ways.items():
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        ips = {k: n / float(np.median(v)) for k, v in times.items()}
        a_, b_ = ways["solve"](), ways["inv"]()
        diff = float((a_ - b_).abs().max() / a_.abs().max())
        print(f"| {n} | {ips['solve']:,.0f} | {ips['inv']:,.0f} | {ips['inv'] / ips['solve']:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
