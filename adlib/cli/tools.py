"""`adlib cache | make-mini-mvtec | notebooks run`: the feature cache, the generated miniature, the course."""
from adlib.cli.common import SPEC_HELP


def cmd_cache(a):
    from adlib.features.cache import cache_clear, cache_info
    if a.action == "clear":
        print(f"removed {cache_clear()} cached feature entries from {cache_info()['folder']}")
        return
    info = cache_info()
    print(f"feature cache {info['folder']}: {info['entries']} entries, {info['bytes'] / 2**20:.1f} MiB "
          f"(cap {info['cap'] / 2**20:.0f} MiB; set ADLIB_CACHE_MAX_MB to change it, ADLIB_CACHE to move it)")


def cmd_make_mini(a):
    from adlib.data.mini import make_mini_mvtec, make_mini_root
    if a.categories:
        root = make_mini_root(a.path, a.categories.split(","), seed=a.seed, size=a.size, overwrite=a.overwrite)
        print(f"wrote miniature categories {a.categories} under {root} (use --data mvtec-root:{root})")
        return
    path = make_mini_mvtec(a.path, seed=a.seed, size=a.size, overwrite=a.overwrite)
    print(f"wrote a miniature MVTec-layout category to {path}")


def cmd_notebooks(a):
    from adlib.teach.notebooks import run_notebooks
    run_notebooks(profile=a.profile, data=a.data, out=a.out, only=a.only, run_dir=a.run_dir)



def add_parsers(sub):
    k = sub.add_parser("cache", help="the on-disk feature cache: info | clear")
    k.add_argument("action", choices=["info", "clear"])
    k.set_defaults(fn=cmd_cache)
    m = sub.add_parser("make-mini-mvtec", help="write a small generated MVTec-layout category with masks")
    m.add_argument("path")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--size", type=int, default=128)
    m.add_argument("--overwrite", action="store_true")
    m.add_argument("--categories", help="write a root of categories instead, e.g. grain,tiles,weave (names pick the texture)")
    m.set_defaults(fn=cmd_make_mini)
    nb = sub.add_parser("notebooks", help="the notebook sequence").add_subparsers(dest="action", required=True)
    r = nb.add_parser("run", help="execute notebooks/NN_*.ipynb in order, headless (papermill), into --out")
    r.add_argument("--profile", default="smoke", help="smoke (committed values) | cpu (ELPV) | full (GPU, paper-sized)")
    r.add_argument("--data", help=f"SPEC for every notebook ({SPEC_HELP}, or mini); default: the profile's")
    r.add_argument("--out", help="folder for executed .ipynb, .html, key numbers (default runs/notebooks-PROFILE)")
    r.add_argument("--only", help="notebook number(s), e.g. 03 or 03,04")
    r.add_argument("--run-dir", help="a trained run for the notebooks that take RUN_DIR")
    r.set_defaults(fn=cmd_notebooks)
