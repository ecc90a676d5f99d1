"""Write measured notebook run times, and the machine they were measured on, into each notebook's header and
README's notebook table.

    python scripts/run_times.py --smoke runs/nb-smoke/summary.json --cpu runs/notebooks-cpu/summary.json
    python scripts/run_times.py --smoke runs/nb-smoke/summary.json          # keep the cpu figures as they are

Reads the runner's summary.json of a `smoke` and (optionally) a `cpu` run (`adlib notebooks run --profile ...
--out DIR`; the runner records the machine: CPU cores, CPU model, GPU, load average), rounds each notebook's
minutes to 0.1 (at least 0.1), and rewrites the header's "**Run time** (...): smoke X min · cpu Y min" line with
`adlib.teach.notebooks.machine.run_time_line` (naming the machine) and the smoke / cpu cells of the notebook's
README row. tests/test_notebook_course.py checks that the two agree; the runner warns when a later run takes more
than twice its header.
"""
import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from adlib.teach.notebooks.machine import RUN_TIME, TIMES, run_time_line  # noqa: E402


def minutes(summary: str) -> tuple:
    """({notebook: minutes}, machine dict or None) of a runner's summary.json."""
    data = json.loads(Path(summary).read_text())
    rows = data["notebooks"]
    return ({r["notebook"]: max(0.1, round(r["minutes"], 1)) for r in rows if r["status"] == "ok"},
            data.get("machine"))


def rewrite_header(source: str, smoke: float, cpu: float, machine: dict) -> str:
    """The header with its run-time line replaced (the whole line from '**Run time**' to the times)."""
    if not TIMES.search(source):
        raise ValueError("the header has no 'smoke X min · cpu Y min' to replace")
    line = run_time_line(smoke, cpu, (machine or {}).get("name", "an unrecorded machine"), (machine or {}).get("load"))
    pattern = re.compile(RUN_TIME.pattern + r"\s*smoke\s+[\d.]+\s*min\s*·\s*cpu\s+[\d.]+\s*min")
    if pattern.search(source):
        return pattern.sub(lambda m: line, source, count=1)
    return TIMES.sub(lambda m: f"smoke {smoke:g} min · cpu {cpu:g} min", source, count=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", required=True)
    p.add_argument("--cpu", default=None, help="a cpu run's summary.json; without it the cpu figures stay")
    a = p.parse_args()
    smoke, where = minutes(a.smoke)
    cpu = minutes(a.cpu)[0] if a.cpu else {}
    readme = (ROOT / "README.md").read_text()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        name = path.stem
        nb = nbformat.read(path, as_version=4)
        head = nb.cells[0]
        old = TIMES.search(head.source)
        if name not in smoke or not old:
            print(f"{name}: not in the smoke summary (or no run time in its header), left as it is")
            continue
        c = cpu.get(name, float(old.group(2)))
        head.source = rewrite_header(head.source, smoke[name], c, where)
        nbformat.write(nb, path)
        row = re.compile(rf"^(\| `{name}` \|.*\| )[\d.]+ min \| [\d.]+ min \|$", flags=re.M)
        if not row.search(readme):
            raise SystemExit(f"README.md: no notebook row for {name} ending in '| X min | Y min |'")
        readme = row.sub(lambda m: f"{m.group(1)}{smoke[name]:g} min | {c:g} min |", readme, count=1)
        print(f"{name}: smoke {smoke[name]:g} min · cpu {c:g} min")
    (ROOT / "README.md").write_text(readme)


if __name__ == "__main__":
    main()
