"""The MVTec-AD-style benchmark: one row per category, then the mean, beside the paper's published means.

Settings: `unified` trains one model on the normal images of every category (the paper's headline
setting); `per-category` trains one model per category. Everything lands in OUT:
  OUT/benchmark.json          the settings (a rerun with other settings is refused)
  OUT/run or OUT/runs/<cat>   the trained run(s); an interrupted training resumes from its checkpoint
  OUT/categories/<cat>.json   one category's report, written atomically; finished categories are skipped
  OUT/results.{csv,json,md}   the table
"""
import csv
import io
import json
from dataclasses import asdict, replace
from pathlib import Path

from tqdm.auto import tqdm

from adlib.data import load_spec
from adlib.errors import AdlibError
from adlib.evaluation.evaluate import evaluate_run
from adlib.files import atomic_write_text, write_json
from adlib.runs.config import RunConfig

COLUMNS = ("image_auroc", "image_ap", "image_f1max", "pixel_auroc", "aupro", "pixel_ap", "pixel_f1max", "mad",
           "images_per_second")
# DESIGN.md §1-2: unified MVTec AD, DiT 2048x16 (1.2 B), S = 3, combined score; images/s on an RTX 4090 at
# batch 64. The paper's other columns are not recorded there, so they stay empty rather than guessed.
PAPER_MEANS = {"image_auroc": 0.990, "pixel_auroc": 0.975, "images_per_second": 88.0}


def _load_or_train(cfg: RunConfig, path: Path, precision: str = None):
    from adlib.runs.run import Run, finished, train_run
    if finished(path):  # trained (ema/) or fitted in closed form (model/ only)
        return Run(path, precision=precision)
    return train_run(cfg, path, resume=(path / "config.json").is_file()).set_precision(precision)


def evaluate_categories(run, parts: dict, out: Path = None, steps=None, grid=None, score=None, progress=True,
                        **evaluate_kw) -> list:
    """One evaluate_run row per category (name -> Dataset), with n_train/n_test/n_anomalous; kept in out/<cat>.json."""
    rows = []
    for name, part in tqdm(parts.items(), desc="categories", disable=not progress or len(parts) < 2):
        done = out / f"{name}.json" if out else None
        if done and done.is_file():
            rows.append(json.loads(done.read_text()))
            continue
        report = evaluate_run(run, part, steps, grid, score, **evaluate_kw)
        row = {"category": name, **report["methods"][0],
               **{k: report[k] for k in ("n_train", "n_test", "n_anomalous")}}
        if done:
            write_json(row, done)
        rows.append(row)
    return rows


def mean_row(rows) -> dict:
    """Unweighted mean over categories, as in the paper's tables; a column without values stays None."""
    mean = {"category": "mean"}
    for key in COLUMNS:
        vals = [r[key] for r in rows if r.get(key) is not None]
        mean[key] = sum(vals) / len(vals) if vals else None
    return mean


def evaluate_root(run, data, steps=None, grid=None, score=None, **evaluate_kw) -> dict:
    """The per-category table of one trained run on a root of categories (`adlib evaluate RUN`)."""
    rows = evaluate_categories(run, data.categories(), None, steps, grid, score, **evaluate_kw)
    return {"data": data.spec, "setting": "evaluate", "steps": steps or run.cfg.steps, "grid": grid or run.cfg.grid,
            "score": score or run.cfg.score, "config": asdict(run.cfg), "rows": rows, "mean": mean_row(rows)}


def benchmark(root, out, cfg: RunConfig, setting: str = "unified", steps=None, grid=None, score=None,
              precision: str = None) -> dict:
    """Train (or resume) and evaluate every category under `root`; returns and writes the table.
    precision: fp32 | bf16 scoring (None: bf16 on CUDA, fp32 on the CPU); each row records it."""
    if setting not in ("unified", "per-category"):
        raise AdlibError(f"unknown --setting {setting!r}: choose unified or per-category")
    from adlib.runs.run import check_options
    check_options(cfg)  # before OUT/benchmark.json is written
    out = Path(out)
    data = load_spec(f"mvtec-root:{root}", cfg.split_seed)
    settings = {"data": f"mvtec-root:{Path(root)}", "setting": setting, "steps": steps or cfg.steps,
                "grid": grid or cfg.grid, "score": score or cfg.score, "config": asdict(cfg)}
    for key in ("data", "device"):  # neither changes what a finished category means
        settings["config"].pop(key)
    _check_settings(out / "benchmark.json", settings)
    rows = []
    if setting == "unified":
        run = _load_or_train(replace(cfg, data=settings["data"]), out / "run", precision)
        rows = evaluate_categories(run, data.categories(), out / "categories", steps, grid, score)
    else:
        for name, part in data.categories().items():
            done = out / "categories" / f"{name}.json"
            if done.is_file():
                rows.append(json.loads(done.read_text()))
                continue
            print(f"[{name}] training {cfg.model} on {part.spec}")
            run = _load_or_train(replace(cfg, data=f"mvtec:{part.spec}"), out / "runs" / name, precision)
            rows += evaluate_categories(run, {name: part}, out / "categories", steps, grid, score)
    table = {**settings, "rows": rows, "mean": mean_row(rows), "paper_mean": PAPER_MEANS}
    write_json(table, out / "results.json")
    atomic_write_text(out / "results.csv", to_csv(table))
    atomic_write_text(out / "results.md", to_markdown(table))
    return table


def _check_settings(path: Path, settings: dict):
    if not path.is_file():
        write_json(settings, path)
        return
    was = json.loads(path.read_text())
    flat = lambda d: {**{k: v for k, v in d.items() if k != "config"}, **d.get("config", {})}
    old, new = flat(was), flat(settings)
    diff = [f"--{k.replace('_', '-')} {old.get(k)} (asked {new[k]})" for k in new if old.get(k) != new[k]]
    if diff:
        raise AdlibError(f"{path.parent} holds a benchmark made with {', '.join(diff)}: rerun with its options "
                         f"to resume it, or choose another --out")


def to_csv(table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(("category",) + COLUMNS)
    for r in table["rows"] + [table["mean"]]:
        w.writerow([r["category"]] + ["" if r.get(k) is None else f"{r[k]:.4f}" for k in COLUMNS])
    return buf.getvalue()


def to_markdown(table) -> str:
    fmt = lambda v, k: "–" if v is None else (f"{v:.1f}" if k == "images_per_second" else f"{100 * v:.1f}")
    head = ["category"] + list(COLUMNS)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table["rows"] + [table["mean"]]:
        name = f"**{r['category']}**" if r["category"] == "mean" else r["category"]
        lines.append("| " + " | ".join([name] + [fmt(r.get(k), k) for k in COLUMNS]) + " |")
    lines.append("| paper mean (unified, DiT 1.2 B, RTX 4090) | "
                 + " | ".join(fmt(PAPER_MEANS.get(k), k) for k in COLUMNS) + " |")
    note = (f"\n{table['setting']} setting on {table['data']}, model {table['config']['model']}, "
            f"S = {table['steps']} ({table['grid']} grid), {table['score']} score. Metrics in %, images/s "
            f"end to end (decoded image -> score) on this machine. Paper columns without a value are not "
            f"published in DESIGN.md.\n")
    return "\n".join(lines) + "\n" + note
