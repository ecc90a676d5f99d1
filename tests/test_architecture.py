"""The folder tree is the architecture: every import inside adlib/ points down a floor, and there is no circle.

Floors, lowest first: errors, files, schedule < data < features < models < method < runs < evaluation < deploy
< teach < cli. Imports inside functions count too (a lazy import is still a dependency).
"""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "adlib"
FLOORS = ["errors", "files", "schedule", "data", "features", "models", "method", "runs", "evaluation", "deploy",
          "teach", "cli"]
FLOOR = {name: (0 if i < 3 else i - 2) for i, name in enumerate(FLOORS)}  # the three shared modules share floor 0
TOP_LEVEL = {"__init__.py", "__main__.py", "errors.py", "files.py", "schedule.py"}


def import_graph(root: Path = PACKAGE) -> dict:
    """module -> the adlib modules it imports anywhere in its file (from the AST; nothing is executed)."""
    name = root.name
    mods = {}
    for p in root.rglob("*.py"):
        n = ".".join((name, *p.relative_to(root).with_suffix("").parts))
        mods[n[:-9] if n.endswith(".__init__") else n] = p
    graph = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg
                for _ in range(max(node.level - 1, 0)):
                    base = base.rsplit(".", 1)[0]
                target = (base + "." + node.module if node.module else base) if node.level else (node.module or "")
                for a in node.names:
                    for cand in (target + "." + a.name, target):
                        if cand in mods and cand != m and not m.startswith(cand + "."):
                            graph[m].add(cand)
                            break
            elif isinstance(node, ast.Import):
                graph[m].update(a.name for a in node.names if a.name in mods and a.name != m)
    return graph


def circles(graph: dict) -> list:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def floor(module: str):
    parts = module.split(".")
    return FLOOR.get(parts[1]) if len(parts) > 1 else None


def test_there_is_no_import_circle_in_adlib():
    assert circles(import_graph()) == []


def test_every_import_points_down_a_floor():
    upward = [f"{m} (floor {floor(m)}) imports {d} (floor {floor(d)})"
              for m, deps in import_graph().items() for d in deps
              if floor(m) is not None and floor(d) is not None and floor(d) > floor(m)]
    assert upward == []


def test_every_module_lives_on_a_floor_and_the_top_level_is_small():
    top = {p.name for p in PACKAGE.iterdir() if p.suffix == ".py"}
    assert top <= TOP_LEVEL and len(top - {"__init__.py", "__main__.py"}) <= 6
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert folders == set(FLOORS) - {"errors", "files", "schedule"}
    for name in folders:  # each floor says what it holds in one paragraph
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and len(doc) > 80, name


def test_the_checker_finds_a_circle_and_an_upward_import(tmp_path):
    """The tests above can fail: a package with a deliberate circle and a low floor importing a high one."""
    pkg = tmp_path / "adlib"
    for folder in ("runs", "deploy"):
        (pkg / folder).mkdir(parents=True)
        (pkg / folder / "__init__.py").write_text('"""x"""\n')
    (pkg / "__init__.py").write_text("")
    (pkg / "runs" / "run.py").write_text("def f():\n    from adlib.deploy.predict import predict\n")
    (pkg / "deploy" / "predict.py").write_text("from adlib.runs.run import f\n")
    graph = import_graph(pkg)
    assert circles(graph) == [["adlib.deploy.predict", "adlib.runs.run"]]
    assert floor("adlib.runs.run") < floor("adlib.deploy.predict")


def test_the_command_line_answers_help_without_importing_torch():
    code = "import sys; from adlib.cli import parser; parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_readme_layout_tree_matches_the_folders():
    readme = (PACKAGE.parent / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    named = {line.split()[0].rstrip("/") for line in block.splitlines()[2:] if line.strip()}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__")}
    shared = {line.split()[i] for line in block.splitlines() if "files.py" in line for i in range(3)}
    assert named - {"errors.py"} == folders
    assert shared == {p.name for p in PACKAGE.iterdir() if p.suffix == ".py"} - {"__init__.py", "__main__.py"}
