"""The notebook sequence: helpers the notebooks call and the headless runner.

    adlib notebooks run [--profile smoke|cpu|full] [--data SPEC] [--out DIR] [--only 03] [--run-dir RUN]

(JupyterLab in headless Chromium and the screenshots in docs/ are test tooling: scripts/notebook_browser.py.)

One concern per module:

- `workspace`: where notebooks read and write ($ADLIB_NOTEBOOK_OUT or a temp folder, never the
  repository), the generated miniature for DATA = "mini", and `record(...)` of key numbers
- `runs`:      a RunConfig from notebook parameters, fresh run folders, the cached smoke run, `open_run`
              (which refuses DATA from another dataset than RUN_DIR's)
- `checks`:    `quality_gate`: MIN_AUROC warns on a student's data, fails under ADLIB_STRICT_GATES=1 (CI)
- `device`:    torch threads, the device, `on_device` (an eps-network on a GPU called with CPU tensors)
- `profiles`:  the sequence, each notebook's `parameters` cell and notebooks/profiles/<profile>.yaml
- `runner`:    papermill execution in order, the summary and failure reports
- `machine`:   the machine a run was measured on, and the warning when a run takes twice its header
- `html_export`: saved progress bars as they ended; HTML exports that open offline (widgets, plotly, math)

Everything the notebooks, the CLI and the tests use is importable from `adlib.teach.notebooks` itself.
"""
from adlib.teach.notebooks.checks import QualityWarning, quality_gate
from adlib.teach.notebooks.device import on_device, pick_device, set_threads
from adlib.teach.notebooks.profiles import PROFILES, SEQUENCE, declared_parameters, list_notebooks, load_profile, parameters_for, select
from adlib.teach.notebooks.runner import export_html, run_notebooks
from adlib.teach.notebooks.runs import SMOKE_TRAIN, new_run_dir, open_run, run_config, same_data, smoke_run
from adlib.teach.notebooks.workspace import MINI, OUT_ENV, notebooks_dir, record, records_dir, resolve_data, work_dir

__all__ = [
    # workspace
    "MINI", "OUT_ENV", "notebooks_dir", "work_dir", "resolve_data", "records_dir", "record",
    # runs
    "SMOKE_TRAIN", "run_config", "new_run_dir", "smoke_run", "open_run", "same_data",
    # checks
    "quality_gate", "QualityWarning",
    # device
    "set_threads", "pick_device", "on_device",
    # profiles
    "SEQUENCE", "PROFILES", "list_notebooks", "declared_parameters", "load_profile", "select", "parameters_for",
    # runner
    "run_notebooks", "export_html",
]
