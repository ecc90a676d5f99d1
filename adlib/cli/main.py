"""`adlib` command line (also `python -m adlib`): one parser, one module per group of commands.

Bad input -> one line on stderr, exit status 2. Every group imports its heavy modules (torch, diffusers) inside
its commands, so `adlib --help` answers at once.
"""
import argparse
import sys
from contextlib import contextmanager

from adlib.cli import deploy, evaluation, runs, tools
from adlib.cli.common import check_positive
from adlib.errors import AdlibError

GROUPS = (runs, evaluation, deploy, tools)


def parser():
    p = argparse.ArgumentParser(prog="adlib", description="Reconstruction-free anomaly detection with diffusion models.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is fastest on a busy machine)")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return p


@contextmanager
def _one_line_warnings():
    """The kit's warnings as `warning: <message>` on stderr, like its errors (no file and line), each starting on
    a line of its own even while a progress bar is drawn (the bar's line has no line break until it ends)."""
    import warnings
    from adlib.errors import AdlibWarning
    plain = warnings.formatwarning
    warnings.formatwarning = lambda msg, cat, *rest, **kw: _below_bars(
        f"warning: {msg}\n" if issubclass(cat, AdlibWarning) else plain(msg, cat, *rest, **kw))
    try:
        yield
    finally:
        warnings.formatwarning = plain


def _below_bars(text: str) -> str:
    """`text` after a line break when a tqdm progress bar is on screen, so it does not land on the bar's line."""
    from tqdm import tqdm
    drawn = any(not getattr(b, "disable", True) for b in list(getattr(tqdm, "_instances", ())))
    return "\n" + text if drawn else text


def main(argv=None):
    a = parser().parse_args(argv)
    with _one_line_warnings():
        return _run(a)


def _run(a):
    try:
        if a.threads is not None:
            check_positive(threads=a.threads)
            import torch
            torch.set_num_threads(a.threads)
        a.fn(a)
    except AdlibError as e:
        if a.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: a training run continues with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
