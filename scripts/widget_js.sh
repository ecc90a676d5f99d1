#!/usr/bin/env bash
# The JavaScript that makes executed-notebook HTML exports open offline (adlib/notebooks/html_export.py
# inlines it): the ipywidgets HTML manager (renders the saved widget state; FontAwesome fonts) and MathJax
# (the notebooks' math). Fetched ONCE, here at set-up, from the npm registry, versions and sha512 pinned,
# into .venv/share/adlib-widgets/ (git-ignored with .venv); never at run or test time, never committed.
# @jupyter-widgets/html-manager 1.0.15 is the release of ipywidgets 8.1.9 / jupyterlab_widgets 3.0.17
# (same @jupyter-widgets/base ^6.0.12, controls ^5.0.13): bump it together with ipywidgets.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=${ADLIB_WIDGET_JS:-.venv/share/adlib-widgets}
PACKAGES=(
  "@jupyter-widgets/html-manager 1.0.15 sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="
  "mathjax 3.2.2 sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
want=$(printf '%s\n' "${PACKAGES[@]}")
if [ -f "$DEST/VERSIONS" ] && [ "$(cat "$DEST/VERSIONS")" = "$want" ]; then
    echo "widget JS ready in $DEST"; exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for spec in "${PACKAGES[@]}"; do
    read -r name version integrity <<<"$spec"
    if command -v npm >/dev/null 2>&1; then
        (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
    else  # no node: the same tarball from the registry's ordinary URL
        "$PY" -c "import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])" \
            "https://registry.npmjs.org/$name/-/${name##*/}-$version.tgz" "$tmp/$(echo "${name#@}" | tr / -)-$version.tgz"
    fi
done
# verify the pinned sha512, then keep only the files the exporter inlines (and the licences)
"$PY" - "$tmp" "$DEST" "${PACKAGES[@]}" <<'EOF'
import base64, hashlib, shutil, sys, tarfile
from pathlib import Path
tmp, dest, specs = Path(sys.argv[1]), Path(sys.argv[2]), [s.split() for s in sys.argv[3:]]
keep = {"@jupyter-widgets/html-manager": ("dist/embed.js", "dist/embed.js.LICENSE.txt", "dist/*.woff2"),
        "mathjax": ("es5/tex-svg-full.js", "LICENSE")}
new = dest.with_name(dest.name + ".new")
shutil.rmtree(new, ignore_errors=True)
for name, version, integrity in specs:
    tgz = tmp / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
    if digest != integrity:
        sys.exit(f"{tgz.name}: sha512 {digest} is not the pinned {integrity}")
    out = new / name.split("/")[-1]
    with tarfile.open(tgz) as tar:
        tar.extractall(tmp / name.replace("/", "_"), **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    root = tmp / name.replace("/", "_") / "package"
    for pattern in keep[name]:
        files = sorted(root.glob(pattern))
        if not files:
            sys.exit(f"{name}@{version}: no {pattern} in the package")
        for f in files:
            (out / f.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, out / f.relative_to(root))
shutil.rmtree(dest, ignore_errors=True)
new.rename(dest)
EOF
printf '%s\n' "${PACKAGES[@]}" >"$DEST/VERSIONS"
echo "widget JS ready in $DEST ($(du -sh "$DEST" | cut -f1))"
