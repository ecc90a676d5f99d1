"""Shared scorers live a floor below bench and select: no import circle between the two."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import adlib

PACKAGE = Path(adlib.__file__).parent


def _imports(path: Path, module: str, everywhere: bool) -> set:
    """adlib modules that `path` (module `module`) imports: at module level, or anywhere (inside functions too)."""
    tree = ast.parse(path.read_text())
    nodes = ast.walk(tree) if everywhere else _module_level(tree.body)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("adlib")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("adlib"):
                target = node.module
            else:
                continue
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # `from . import scoring` imports a module
    return found


def _module_level(body):
    for node in body:  # statements run at import: the body and its if/try blocks, not def/class bodies
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    yield from _module_level(child.body if isinstance(child, ast.ExceptHandler) else [child])


def _graph(everywhere: bool) -> dict:
    files = {".".join(("adlib",) + p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__"): p
             for p in PACKAGE.rglob("*.py")}
    return {m: {t for t in _imports(p, m, everywhere) if t in files and t != m} for m, p in files.items()}


def _reaches(graph, a, b) -> bool:
    seen, todo = set(), [a]
    while todo:
        m = todo.pop()
        if m == b:
            return True
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, ())
    return False


def test_select_alone_does_not_import_bench():
    code = "import sys, adlib.evaluation.select; print('adlib.evaluation.bench' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_no_import_circle_between_bench_and_select():
    anywhere, top = _graph(everywhere=True), _graph(everywhere=False)
    assert "adlib.evaluation.bench" not in anywhere["adlib.evaluation.select"]
    assert not (_reaches(top, "adlib.evaluation.select", "adlib.evaluation.bench") and _reaches(anywhere, "adlib.evaluation.bench", "adlib.evaluation.select"))
    for low in ("adlib.evaluation.scorers", "adlib.evaluation.timing"):  # the floor below imports neither
        assert not _reaches(anywhere, low, "adlib.evaluation.bench") and not _reaches(anywhere, low, "adlib.evaluation.select")
    for m in ("adlib.evaluation.bench", "adlib.evaluation.select", "adlib.evaluation.scorers", "adlib.evaluation.timing", "adlib.evaluation.baselines", "adlib.evaluation.throughput"):
        assert not any(_reaches(top, t, m) for t in top[m]), f"module-level import cycle through {m}"


def test_bench_still_offers_the_shared_scorers():
    from adlib.evaluation import bench, scorers
    assert bench.invad_scorer is scorers.invad_scorer and bench.map_scorer is scorers.map_scorer


def test_invad_scorer_batches_visit_the_models_device():
    import torch
    from adlib.evaluation.scorers import invad_scorer
    from adlib.models import build_model
    model = build_model("mlp", 4, 2, hidden=8, depth=1).eval()
    z = torch.randn(6, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    f = invad_scorer(model, 2, "paper", z, batch_size=4)
    out = f(z)
    assert f.device == torch.device("cpu") and out["map"].shape == (6, 2, 2) and out["combined"].shape == (6,)
    assert torch.allclose(invad_scorer(model, 2, "paper", z, batch_size=6)(z)["map"], out["map"], atol=1e-6)
