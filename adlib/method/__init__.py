"""The method, floor 4: DDIM inversion with explicit (t, t') pairs (`inversion.py`), scores read from the
inverted latent (`scoring.py`: NLL, norm map, Diff, local scores, min-max) and their calibration on normal
normal images (`calibration.py`: normaliser and split-conformal threshold, split or cross-fitted), and the
precision rule (`precision.py`: bf16 autocast on CUDA, fp32 on the CPU). Imports data, features and
models below it; nothing above. The schedule (T, abar) is one floor lower still, in `adlib/schedule.py`,
because the closed-form Gaussian eps needs it too."""

SCORES = ("nll", "diff", "combined", "local-max", "local-top", "max")  # image scores; here so the CLI need not import torch
DECISIONS = ("auto", "threshold", "full-conformal")  # --decision (adlib/runs/full_conformal.py); here for the same reason
