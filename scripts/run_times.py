"""Write measured notebook run times into each notebook's header and README's notebook table.

    python scripts/run_times.py --smoke runs/nb-smoke/summary.json --cpu runs/notebooks-cpu/summary.json

Reads the runner's summary.json of a `smoke` and a `cpu` run (`adlib notebooks run --profile ... --out DIR`),
rounds each notebook's minutes to 0.1 (at least 0.1), and replaces the "smoke X min · cpu Y min" of the
header (first cell) and the smoke / cpu cells of the notebook's README row. tests/test_notebook_course.py
checks that the two agree.
"""
import argparse
import json
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
TIMES = re.compile(r"smoke\s+[\d.]+\s*min\s*·\s*cpu\s+[\d.]+\s*min")


def minutes(summary: str) -> dict:
    rows = json.loads(Path(summary).read_text())["notebooks"]
    return {r["notebook"]: max(0.1, round(r["minutes"], 1)) for r in rows if r["status"] == "ok"}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", required=True)
    p.add_argument("--cpu", required=True)
    a = p.parse_args()
    smoke, cpu = minutes(a.smoke), minutes(a.cpu)
    readme = (ROOT / "README.md").read_text()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        name = path.stem
        if name not in smoke or name not in cpu:
            print(f"{name}: not in both summaries, left as it is")
            continue
        times = f"smoke {smoke[name]:g} min · cpu {cpu[name]:g} min"
        nb = nbformat.read(path, as_version=4)
        head = nb.cells[0]
        if not TIMES.search(head.source):
            raise SystemExit(f"{path}: its header has no 'smoke X min · cpu Y min' to replace")
        head.source = TIMES.sub(times, head.source, count=1)
        nbformat.write(nb, path)
        row = re.compile(rf"^(\| `{name}` \|.*\| )[\d.]+ min \| [\d.]+ min \|$", flags=re.M)
        if not row.search(readme):
            raise SystemExit(f"README.md: no notebook row for {name} ending in '| X min | Y min |'")
        readme = row.sub(lambda m: f"{m.group(1)}{smoke[name]:g} min | {cpu[name]:g} min |", readme, count=1)
        print(f"{name}: {times}")
    (ROOT / "README.md").write_text(readme)


if __name__ == "__main__":
    main()
