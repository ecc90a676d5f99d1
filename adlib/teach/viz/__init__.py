"""Plotly figures and ipywidgets explorers for the notebooks, one concern per module:

- `theory`:    the N(0, I) prior in d dimensions (chi density, reverse scoring, local anomalies), notebook 01
- `shell`:     the shell paradox on real latents: typicality |‖x‖ - √d| beside the NLL (`adlib.teach.viz.shell`), notebook 01
- `figures`:   figure builders (numbers in, `go.Figure` out) for training, latents and sweeps, notebooks 02-04
- `paper`:     the paper's ablation beside the measured one, and sentences comparing the two, notebook 04
- `sweep_lessons`: notebook 04's computed lessons (S = 1, plateau, 1 % FPR, who won) and its S explorer
- `explorers`: ipywidgets controls wired to those builders; their callbacks are plain methods
- `inspect`:   an explorer over the output of `adlib predict` (maps, a live threshold, uploads), notebook 06
- `base`:      the colours, score labels and converters they share

Everything the notebooks and tests use is importable from `adlib.teach.viz` itself.
"""
from adlib.teach.viz.base import ANOMALOUS, DEFECT, NORMAL, SCORE_LABELS
from adlib.teach.viz.explorers import LatentExplorer, LocalAnomalyExplorer, PriorExplorer, display_data
from adlib.teach.viz.figures import bar_figure, loss_figure, overlay_figure, pca_figure, position_labels, roc_figure, score_histograms, speed_auroc_figure, sweep_figure, trajectory_figure
from adlib.teach.viz.inspect import PredictionExplorer
from adlib.teach.viz.paper import PAPER_ABLATION, PAPER_RECONSTRUCTION, ablation_markdown, compare_to_paper, paper_vs_measured_figure
from adlib.teach.viz.theory import DIMENSIONS, chi_pdf, local_anomaly_latents, prior_figure, prior_nll_from_norm, sample_norms

__all__ = [
    # base
    "NORMAL", "ANOMALOUS", "DEFECT", "SCORE_LABELS",
    # theory (01)
    "DIMENSIONS", "chi_pdf", "sample_norms", "prior_nll_from_norm", "prior_figure", "local_anomaly_latents",
    # figures (02-04)
    "score_histograms", "loss_figure", "bar_figure", "trajectory_figure", "overlay_figure", "roc_figure",
    "position_labels", "pca_figure", "sweep_figure", "speed_auroc_figure",
    # paper (04)
    "PAPER_ABLATION", "PAPER_RECONSTRUCTION", "paper_vs_measured_figure", "ablation_markdown", "compare_to_paper",
    # explorers
    "display_data", "PriorExplorer", "LocalAnomalyExplorer", "LatentExplorer",
    # inspect (06)
    "PredictionExplorer",
]
