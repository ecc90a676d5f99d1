"""Runs, floor 5: the flat configuration and its recipes (`config.py`), the training loop under Accelerate with
EMA, checkpoints and resume (`train.py`), and the run folder (`run.py`: `train_run` makes one, `Run` opens one
to score), and cross-fitted calibration of closed-form runs (`crossfit.py`: every normal image scored by
a model fitted without it), full conformal decisions from few normals (`full_conformal.py`: each image judged
by the model refitted with it; measured by benchmarks/full_conformal.py, not yet used by `predict`), and what
`--standardize auto` chose, in words (`choice.py`). A run knows nothing of prediction, export or teaching: those
floors take a Run."""
