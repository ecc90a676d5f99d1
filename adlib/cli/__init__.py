"""The `adlib` command: `main.py` holds the one parser; `runs.py` (train), `evaluation.py` (evaluate, compare,
benchmark, throughput, select), `deploy.py` (predict, export) and `tools.py` (cache, make-mini-mvtec,
notebooks) each add their group of commands; `common.py` holds the options and checks they share.
Nothing here computes: every command calls a floor below (runs, evaluation, deploy, teach)."""
from adlib.cli.main import main, parser

__all__ = ["main", "parser"]
