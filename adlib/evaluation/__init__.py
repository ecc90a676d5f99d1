"""Evaluation, floor 6: metrics (`metrics.py`), baselines (`baselines.py`: reconstruction, PaDiM, kNN), scorers
shared by the harnesses (`scorers.py`), timing (`timing.py`, `speed_table.py`), the side-by-side harness
(`bench.py`, behind `adlib compare`), one setting on a test set (`evaluate.py`), label-free choice
(`select.py`), the per-category benchmark (`benchmark.py`), images/s and FLOPs (`throughput.py`) and the
paper-scale arithmetic (`scale.py`). Reads runs; never imported by them."""
