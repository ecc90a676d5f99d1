"""Markdown table of `adlib compare` JSON reports, for the README:  python benchmarks/report.py docs/bench/elpv-*.json"""
import json
import sys


def main(paths):
    reports = [json.load(open(p)) for p in paths]
    keep = lambda m: (m["name"] in ("padim", "knn") or m["name"].startswith("reconstruction")  # noqa: E731
                      or m.get("score") == "combined" or m["name"] == "invad S=3")
    names = [(m["name"], m.get("score", "")) for m in reports[0]["methods"] if keep(m)]
    head = "| method | score | NFE | " + " | ".join(f"{r['data']} AUROC | {r['data']} scores/s | {r['data']} e2e / backbone"
                                                     for r in reports) + " |"
    print(head)
    print("|" + "---|" * (3 + 3 * len(reports)))
    for name, score in names:
        cells = []
        for r in reports:
            m = next(m for m in r["methods"] if m["name"] == name and m.get("score", "") == score)
            cells += [f"{m['image_auroc']:.3f}", f"{m['score_images_per_second']:.1f}", f"{m['backbone_ratio']:.2f}"]
        nfe = next(m["nfe"] for m in reports[0]["methods"] if m["name"] == name)
        print(f"| {name} | {score} | {nfe} | " + " | ".join(cells) + " |")
    for r in reports:
        t, c = r.get("training", {}), r["label_free_choice"]
        print(f"\n{r['data']}: {r['n_train']} train / {r['n_val']} val / {r['n_test']} test ({r['n_anomalous']} anomalous); "
              f"backbone alone {r['backbone_images_per_second']:.1f} images/s; training {t.get('train_seconds', '?')} s "
              f"({t.get('iters', '?')} iterations), features {t.get('features_seconds', '?')} s; whole compare "
              f"{r['compare_seconds']:.0f} s after training. Label-free choice: S={c['steps']} {c['score']} -> "
              f"{c['test_image_auroc']:.3f} (best with labels: S={c['best_with_labels']['steps']} "
              f"{c['best_with_labels']['score']} -> {c['best_with_labels']['test_image_auroc']:.3f}).")


if __name__ == "__main__":
    main(sys.argv[1:])
