"""Sketch codes: do they capture the eyes and mouth, or only the face's size? And sheep reconstructions.

Run from the repository root (about 15 minutes on one idle CPU core):

    python benchmarks/sketches.py
    python benchmarks/sketches.py --quick          # a smoke run, numbers meaningless

Part 1, synthetic faces (`facespace.data.sketch_synth`): faces 40-220 px wide (size is a nuisance,
drawn independently of the parts), 4 eye kinds, 4 mouth kinds. For each kind of code:

- probe: held-out accuracy of a logistic regression on the codes (train codes -> test codes) for
  the mouth, eye and nose kind; chance is 25%. Target: >= 90% for mouth and eyes.
- size R2: held-out R2 of a linear regression from the codes to log face size (high = the code
  holds the size).
- clusters: HDBSCAN (`facespace.pipelines.sketches.cluster_sketches`) on the test codes; purity of the
  clusters w.r.t. mouth kind, eye kind, and face-size tercile (what the clusters follow).

Rows: the face-size-only baseline (the one number the seed's clusters followed), the point- and
stroke-count baseline (what any pooled readout can count), the seed's recipe (no per-sketch scale
normalisation, code from the encoder's final states, MSE), facespace's model untrained (what
pooling alone gives), and facespace's model trained with the same budget.

Part 1b, the same with `equal_counts=True`: every eye, nose and mouth kind is one stroke of the
same number of points, so counting cannot tell the kinds apart and the probe can fail; the
untrained row beside the trained one shows what training adds.

Part 2, the real sheep set (Sketch-RNN `aaron_sheep.npz`): test reconstruction loss (teacher
forced: offsets MSE in normalised units + pen cross-entropy) of the trained model against the same
model untrained, and a grid of originals over free-running reconstructions.

Writes `benchmarks/results/sketches.{json,md}`, `sketches_faces.png`, `sketches_sheep.png` and
`sketches_clusters.png` (a few sketches from each of the first HDBSCAN clusters).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHEEP = Path(os.environ.get("FACESPACE_SHARED", ROOT.parent / "shared" / "data")) / "sketchrnn" / "aaron_sheep.npz"
RESULTS = ROOT / "benchmarks" / "results"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def probe_scores(ztr, zte, train, test) -> dict:
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    for part in ("mouth", "eyes", "nose"):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(ztr, train.labels[part])
        out[f"probe_{part}"] = float(clf.score(zte, test.labels[part]))
    reg = make_pipeline(StandardScaler(), LinearRegression()).fit(ztr, np.log(train.labels["size"]))
    out["size_r2"] = float(reg.score(zte, np.log(test.labels["size"])))
    return out


def cluster_scores(zte, test) -> tuple[dict, np.ndarray]:
    from facespace.pipelines.sketches import cluster_purity, cluster_sketches

    labels = cluster_sketches(zte, "hdbscan", min_cluster_size=10, min_samples=5)
    size_bin = np.digitize(test.labels["size"], np.quantile(test.labels["size"], [1 / 3, 2 / 3]))
    return {
        "clusters": int(labels.max() + 1),
        "noise": float((labels < 0).mean()),
        "purity_mouth": cluster_purity(test.labels["mouth"], labels),
        "purity_eyes": cluster_purity(test.labels["eyes"], labels),
        "purity_size": cluster_purity(size_bin, labels),
    }, labels


def train_model(train, val, args, **options):
    from facespace.pipelines.sketches import train_sketches

    t0 = time.perf_counter()
    model = train_sketches(train, val=val, epochs=args.epochs, batch_size=64, lr=2e-3, seed=0,
                           threads=args.threads, progress=False, **options)
    return model, time.perf_counter() - t0


def count_features(sketches) -> np.ndarray:
    """Per sketch: number of points and of strokes (what a readout can count without seeing shapes)."""
    return np.array([[len(s), int(np.sum(s[:, 2] > 0))] for s in sketches.strokes], np.float64)


def synthetic(args, *, equal_counts: bool = False, pictures: bool = True) -> tuple[list[dict], dict]:
    from facespace.data.sketch_synth import make_face_sketches
    from facespace.models.sketch_ae import SketchAE, SketchAEConfig
    from facespace.data.sketch_draw import pairs_grid, sketch_grid
    from facespace.grid import save_png

    train = make_face_sketches(args.n_train, seed=1, equal_counts=equal_counts)
    val = make_face_sketches(200, seed=3, equal_counts=equal_counts)
    test = make_face_sketches(args.n_test, seed=2, equal_counts=equal_counts)
    rows = []

    size_tr, size_te = np.log(train.labels["size"])[:, None], np.log(test.labels["size"])[:, None]
    row = {"codes": "face size only (baseline)", "train_s": 0.0, **probe_scores(size_tr, size_te, train, test)}
    row.update(cluster_scores(size_te, test)[0])
    rows.append(row)
    log(f"size baseline: {row}")
    ctr, cte = count_features(train), count_features(test)
    row = {"codes": "point and stroke counts only (baseline)", "train_s": 0.0, **probe_scores(ctr, cte, train, test)}
    row.update(cluster_scores(cte, test)[0])
    rows.append(row)
    log(f"count baseline: {row}")

    recipes = [
        ("seed recipe: final states, raw size, MSE", dict(fit_box=False, readout="last", output="mse"), True),
        ("facespace, untrained", dict(), False),
        ("facespace: unit box + pooled readout, MSE", dict(), True),
    ]
    if equal_counts:  # the question here is what training adds over the same network untrained
        recipes = recipes[1:]
    models = {}
    for name, options, trained in recipes:
        if trained:
            model, seconds = train_model(train, val, args, **options)
        else:
            import torch

            torch.manual_seed(0)
            model, seconds = SketchAE(SketchAEConfig(**options)).fit_scale(train.strokes), 0.0
        ztr, zte = model.encode(train), model.encode(test)
        row = {"codes": name, "train_s": seconds, **probe_scores(ztr, zte, train, test)}
        scores, labels = cluster_scores(zte, test)
        row.update(scores)
        row["test_loss"] = model.evaluate(test)["loss"]
        rows.append(row)
        models[name] = (model, labels)
        log(f"{name}: {row}")

    if not pictures:
        return rows, {"n_train": len(train), "n_val": len(val), "n_test": len(test)}
    model, labels = models[recipes[-1][0]]
    shown = test.strokes[:16]
    save_png(pairs_grid(shown, model.reconstruct(shown), size=64, ncols=8), RESULTS / "sketches_faces.png")
    picks = [i for c in range(min(6, labels.max() + 1)) for i in np.flatnonzero(labels == c)[:8]]
    save_png(sketch_grid([test.strokes[i] for i in picks], size=48, ncols=8), RESULTS / "sketches_clusters.png")
    return rows, {"n_train": len(train), "n_val": len(val), "n_test": len(test)}


def sheep(args) -> list[dict]:
    import torch

    from facespace.data.sketch_formats import read_npz
    from facespace.grid import save_png
    from facespace.models.sketch_ae import SketchAE, SketchAEConfig
    from facespace.data.sketch_draw import pairs_grid

    train = read_npz(SHEEP, split="train", limit=args.sheep_train)
    val = read_npz(SHEEP, split="valid")
    test = read_npz(SHEEP, split="test")
    rows = []
    torch.manual_seed(0)
    untrained = SketchAE(SketchAEConfig(max_len=250)).fit_scale(train.strokes)
    rows.append({"model": "facespace, untrained", "train_s": 0.0, **untrained.evaluate(test)})
    from facespace.pipelines.sketches import train_sketches

    for name, options in [("facespace, MSE", dict(output="mse")), ("facespace, mixture of Gaussians (Sketch-RNN)", dict(output="mdn"))]:
        if options["output"] == "mdn" and args.quick:
            continue
        t0 = time.perf_counter()
        model = train_sketches(train, val=val, epochs=args.sheep_epochs, batch_size=64, lr=2e-3, seed=0,
                               threads=args.threads, progress=False, max_len=250, **options)
        row = {"model": name, "train_s": time.perf_counter() - t0, **model.evaluate(test)}
        rows.append(row)
        log(f"sheep {name}: {row}")
        if options["output"] == "mse":
            shown = test.strokes[:16]
            save_png(pairs_grid(shown, model.reconstruct(shown), size=64, ncols=8), RESULTS / "sketches_sheep.png")
    return rows, {"n_train": len(train), "n_val": len(val), "n_test": len(test)}


def table(rows: list[dict]) -> list[str]:
    f = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    lines = ["| codes | probe mouth | probe eyes | probe nose | size R2 | clusters | noise | purity mouth | purity eyes | purity size | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['codes']} | {f(r['probe_mouth'])} | {f(r['probe_eyes'])} | {f(r['probe_nose'])} | {r['size_r2']:.2f} | "
            f"{r['clusters']} | {f(r['noise'])} | {f(r['purity_mouth'])} | {f(r['purity_eyes'])} | {f(r['purity_size'])} | {r['train_s']:.0f} |"
        )
    return lines


def markdown(result: dict) -> str:
    f = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    lines = [
        "# Sketch codes: interior parts vs face size, and sheep reconstructions", "",
        f"- date: {result['date']}", f"- command: `{result['command']}`",
        f"- machine: {result['machine']}", f"- versions: {result['versions']}", "",
        f"## Synthetic faces ({result['synthetic_sizes']}; size 40-220 px, a nuisance)", "",
        "Probe = held-out logistic-regression accuracy (chance 25%); size R2 = held-out linear R2 of log size; "
        "purity = HDBSCAN clusters on test codes vs mouth kind / eye kind / size tercile.", "",
        *table(result["synthetic"]),
    ]
    base, best = result["synthetic"][0], result["synthetic"][-1]
    lines += ["", f"Ratios, facespace trained vs face-size baseline: probe mouth x{best['probe_mouth'] / base['probe_mouth']:.2f}, "
              f"probe eyes x{best['probe_eyes'] / base['probe_eyes']:.2f}, purity mouth x{best['purity_mouth'] / max(base['purity_mouth'], 1e-9):.2f}, "
              f"purity eyes x{best['purity_eyes'] / max(base['purity_eyes'], 1e-9):.2f}.",
              f"Target probe >= 90% for mouth and eyes: {'met' if min(best['probe_mouth'], best['probe_eyes']) >= 0.9 else 'NOT met'}.",
              "", "Grids: `sketches_faces.png` (test originals over reconstructions), `sketches_clusters.png` "
              "(up to 8 sketches from each of the first 6 clusters, one cluster per row).", ""]
    if result.get("synthetic_equal"):
        eq = result["synthetic_equal"]
        untrained = next(r for r in eq if "untrained" in r["codes"])
        lines += ["## Synthetic faces, equal counts (the probe can fail)", "",
                  "Every eye, nose and mouth kind is one stroke of the same number of points (`make_face_sketches("
                  "equal_counts=True)`): counting points or strokes cannot tell the kinds apart.", "",
                  *table(eq), "",
                  f"Trained vs untrained: probe mouth {f(untrained['probe_mouth'])} -> {f(eq[-1]['probe_mouth'])}, "
                  f"probe eyes {f(untrained['probe_eyes'])} -> {f(eq[-1]['probe_eyes'])}, "
                  f"probe nose {f(untrained['probe_nose'])} -> {f(eq[-1]['probe_nose'])}.", ""]
    if result.get("sheep"):
        lines += [f"## Sheep (`aaron_sheep.npz`, {result['sheep_sizes']})", "",
                  "Test loss, teacher forced (offsets: MSE in units of the training offsets' std, or the mixture's NLL; pen: cross-entropy).", "",
                  "| model | test loss | offsets | pen | train s |", "|---|---|---|---|---|"]
        for r in result["sheep"]:
            lines.append(f"| {r['model']} | {r['loss']:.3f} | {r['offsets']:.3f} | {r['pen']:.3f} | {r['train_s']:.0f} |")
        u, m = result["sheep"][0], result["sheep"][1]
        lines += ["", f"MSE model vs untrained: pen loss x{m['pen'] / u['pen']:.2f}, offsets x{m['offsets'] / u['offsets']:.2f}. "
                  "Grid: `sketches_sheep.png` (test originals over free-running reconstructions).", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=1500)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--sheep-train", type=int, default=1000)
    p.add_argument("--sheep-epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    args = p.parse_args()
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.sheep_train, args.sheep_epochs = 200, 100, 1, 100, 1
    import sklearn
    import torch

    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows, sizes = synthetic(args)
    result = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "command": "python " + " ".join(["benchmarks/sketches.py", *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}, {platform.processor() or platform.machine()}, torch threads {args.threads}",
        "versions": f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, scikit-learn {sklearn.__version__}",
        "synthetic_sizes": f"{sizes['n_train']} train / {sizes['n_val']} val / {sizes['n_test']} test, {args.epochs} epochs",
        "synthetic": rows,
    }
    result["synthetic_equal"], _ = synthetic(args, equal_counts=True, pictures=False)
    if SHEEP.exists():
        result["sheep"], s = sheep(args)
        result["sheep_sizes"] = f"{s['n_train']} train / {s['n_val']} val / {s['n_test']} test, {args.sheep_epochs} epochs"
    else:
        log(f"no sheep data at {SHEEP}; skipping part 2")
    result["total_s"] = time.perf_counter() - started
    from facespace.files import write_text_atomic

    write_text_atomic(RESULTS / "sketches.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(RESULTS / "sketches.md", markdown(result))
    log(f"done in {result['total_s']:.0f} s")
    print(markdown(result))


if __name__ == "__main__":
    main()
