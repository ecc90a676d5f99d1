"""Teach, floor 8: what the notebooks call. `viz/` holds plotly figures, ipywidgets explorers and the lessons'
computations; `notebooks/` the profiles, workspace, quality gates, the headless runner and the offline HTML
export; `verdicts` the one rule for AUROC verdicts (standard errors, ties within 2). Everything here may use every
floor below; nothing below imports it."""
