"""dlib's pretrained face encoder on LFW: the stock model, and a per-fold adaptation chosen on View 1.

Setting: LFW "unrestricted, labelled outside data" (dlib's network was trained on ~3M outside faces;
the adaptation uses the identity labels of the training folds' people only).

Steps (each writes into benchmarks/results/identity_dlib.{json,md}):
  1. `--select`: View 1. Every configuration (flip averaging; centring, whitening, WCCN or LDA with
     their settings; cosine or Euclidean) is fitted on the people of pairsDevTrain (all their LFW
     images), its threshold chosen on the DevTrain pairs, and scored on the DevTest pairs. The best
     by DevTest accuracy (ties: the simpler, listed first) becomes the plan, written to the results
     file before View 2 is opened.
  2. `--score`: View 2, once, for the planned configuration and the stock rows: for each fold the
     adaptation is fitted on the other nine folds' people (all their images) and the threshold on the
     other nine folds' pairs. Counts every configuration scored on View 2.

Codes come from `benchmarks/dlib_codes.py` (runs/dlib_lfw/codes.npz: the library's locate -> align ->
encode path, HOG detection, 5 landmarks, no jitter; plain and mirrored chips).

    .venv/bin/python benchmarks/dlib_codes.py
    .venv/bin/python benchmarks/identity_dlib.py --select
    .venv/bin/python benchmarks/identity_dlib.py --score
    .venv/bin/python benchmarks/dlib_cards.py            # the model cards from these results
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dlib_codes import codes_for, load_codes  # noqa: E402
from dlib_identification import identification, identification_lines  # noqa: E402
from verification import LFW, RESULTS, machine  # noqa: E402

from facespace.data.pairs import read_pairs  # noqa: E402
from facespace.people.adaptation import CodeAdapter  # noqa: E402
from facespace.people.lfw import evaluate_fold_distances  # noqa: E402
from facespace.people.thresholds import calibrate_threshold, pair_accuracy, roc_metrics  # noqa: E402

NAME = "identity_dlib"
SETTING = "unrestricted, labelled outside data"


def pair_index(pairs, row) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    def key(n, i):
        return f"{n}/{n}_{i:04d}.jpg"

    ia = np.array([row[key(p.name_a, p.index_a)] for p in pairs])
    ib = np.array([row[key(p.name_b, p.index_b)] for p in pairs])
    return ia, ib, np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])


def configurations() -> list[dict]:
    """The View 1 grid, simplest first."""
    grid = [{"method": "none", "metric": "l2"}, {"method": "none", "metric": "cosine"}, {"method": "center"}]
    grid += [{"method": "whiten", "n_components": k, "shrinkage": s} for k in (None, 96, 64) for s in (0.01, 0.1)]
    grid += [{"method": "wccn", "shrinkage": s} for s in (0.01, 0.03, 0.1, 0.3, 1.0)]
    grid += [{"method": "lda", "n_components": k, "shrinkage": s} for k in (127, 96, 64) for s in (0.01, 0.1, 0.3)]
    return [dict(c, flip=f) for f, c in itertools.product((False, True), grid)]


def distances(z: np.ndarray, ia, ib, config: dict, train_rows: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Pair distances under `config`, its adaptation fitted on `train_rows` (their person labels)."""
    if config["method"] == "none":
        a, b = z[ia], z[ib]
        if config.get("metric") == "l2":
            return np.linalg.norm(a - b, axis=1)
        a, b = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
        return 1.0 - np.sum(a * b, 1)
    options = {k: config[k] for k in ("n_components", "shrinkage") if k in config}
    adapter = CodeAdapter(method=config["method"], **options).fit(z[train_rows], names[train_rows])
    rows = np.union1d(ia, ib)
    t = np.zeros((len(z), adapter.components_.shape[1]), np.float32)
    t[rows] = adapter.transform(z[rows])
    return 1.0 - np.sum(t[ia] * t[ib], 1)


def label(config: dict) -> str:
    parts = [config["method"]] + [f"{k}={config[k]}" for k in ("n_components", "shrinkage", "metric") if k in config]
    return " ".join(parts) + (" +flip" if config["flip"] else "")


def select(results: dict) -> dict:
    c, names, row = load_codes()
    train, test = read_pairs(LFW / "pairsDevTrain.txt"), read_pairs(LFW / "pairsDevTest.txt")
    tr_a, tr_b, tr_same, _ = pair_index(train, row)
    te_a, te_b, te_same, _ = pair_index(test, row)
    train_people = {p.name_a for p in train} | {p.name_b for p in train}
    assert not train_people & ({p.name_a for p in test} | {p.name_b for p in test}), "View 1 people overlap"
    train_rows = np.flatnonzero(np.isin(names, sorted(train_people)))
    rows = []
    for config in configurations():
        z = codes_for(c, config["flip"])
        d_tr = distances(z, tr_a, tr_b, config, train_rows, names)
        d_te = distances(z, te_a, te_b, config, train_rows, names)
        t = calibrate_threshold(d_tr, tr_same)
        _, _, auc, eer, _ = roc_metrics(d_te, te_same)
        rows.append({"config": config, "label": label(config), "devtest_accuracy": pair_accuracy(d_te, te_same, t),
                     "devtest_auc": auc, "devtest_eer": eer, "threshold": float(t)})
        print(f"{rows[-1]['label']:<40} {rows[-1]['devtest_accuracy']:.4f}  AUC {auc:.5f}", file=sys.stderr)
    best = max(rows, key=lambda r: (round(r["devtest_accuracy"], 6), r["devtest_auc"]))
    results["view1"] = {"train": "pairsDevTrain.txt (2,200 pairs; adaptation fitted on all LFW images of its "
                                 f"{len(train_people)} people: {len(train_rows)} images)",
                        "test": "pairsDevTest.txt (1,000 pairs, other people)", "configurations": rows,
                        "chosen": best}
    results["plan"] = {
        "written": datetime.datetime.now().isoformat(timespec="seconds"),
        "view2_rows": ["stock dlib, Euclidean, threshold from the other nine folds",
                       "stock dlib at its fixed threshold 0.6",
                       f"adapted: {best['label']} (chosen on View 1), fitted per fold on the other nine folds' people"],
        "note": "View 2 is scored once with these rows; nothing is tuned on it.",
    }
    return results


def score(results: dict) -> dict:
    if "plan" not in results:
        raise SystemExit("no plan in the results file: run --select first (View 1 chooses the configuration)")
    c, names, row = load_codes()
    pairs = read_pairs(LFW / "pairs.txt")
    ia, ib, same, fold = pair_index(pairs, row)
    people_of = {k: {p.name_a for p in pairs if p.fold == k} | {p.name_b for p in pairs if p.fold == k} for k in range(10)}
    chosen = results["view1"]["chosen"]["config"]
    stock = codes_for(c, False)
    d_stock = np.linalg.norm(stock[ia] - stock[ib], axis=1)
    rows = {}
    rows["stock dlib (Euclidean, threshold from nine folds)"] = evaluate_fold_distances(lambda k: d_stock, same, fold,
                                                                                        metric="l2")
    fixed = [pair_accuracy(d_stock[fold == k], same[fold == k], 0.6) for k in range(10)]
    z = codes_for(c, chosen["flip"])
    cache = {}

    def adapted(k):
        if k not in cache:
            others = set().union(*(people_of[j] for j in range(10) if j != k))
            train_rows = np.flatnonzero(np.isin(names, sorted(others)))
            cache[k] = distances(z, ia, ib, chosen, train_rows, names)
        return cache[k]

    name = (f"dlib{' + flip averaging' if chosen['flip'] else ''}, Euclidean, threshold from nine folds (chosen on View 1)"
            if chosen["method"] == "none" else f"adapted: {label(chosen)}")
    rows[name] = evaluate_fold_distances(adapted, same, fold, metric="l2" if chosen["method"] == "none" else "cosine")
    results["view2_thresholds"] = {"chosen": rows[name].thresholds}
    out = {}
    for name, rep in rows.items():
        out[name] = {"accuracy": rep.mean_accuracy, "standard_error": rep.standard_error, "auc": rep.auc,
                     "eer": rep.eer, "tar_at_far": {str(k): v for k, v in rep.tar_at_far.items()},
                     "fold_accuracies": rep.fold_accuracies}
        print(f"{name}: {rep.mean_accuracy:.4f} ± {rep.standard_error:.4f}  AUC {rep.auc:.5f}", file=sys.stderr)
    out["stock dlib at its fixed threshold 0.6"] = {"accuracy": float(np.mean(fixed)),
                                                    "standard_error": float(np.std(fixed, ddof=1) / np.sqrt(10)),
                                                    "fold_accuracies": fixed}
    results["view2"] = {"setting": SETTING, "rows": out, "configurations_scored_on_view2": len(out),
                        "located": int(c["located"].sum()), "images": len(names),
                        "no_face_found": "images where neither HOG nor the CNN detector found a face used the "
                                         "LFW tight box (65, 70, 120, 120)",
                        "seconds_per_image": float(c["seconds_per_image"]), "encode_workers": int(c["workers"])}
    return results


def clustering(results: dict, min_images: int = 10) -> dict:
    """benchmarks/clustering.py's set (people with >= 10 images) and methods, on dlib's codes."""
    from facespace.people.clustering import cluster, cluster_scores, estimate_eps

    c, names, _ = load_codes()
    counts = {n: k for n, k in zip(*np.unique(names, return_counts=True))}
    many = np.array([counts[n] >= min_images for n in names])
    chosen = results["view1"]["chosen"]["config"]
    z = codes_for(c, chosen["flip"])
    options = {k: chosen[k] for k in ("n_components", "shrinkage") if k in chosen}
    variants = {"stock dlib": codes_for(c, False)[many]}
    if chosen["flip"]:
        variants["dlib +flip"] = z[many]
    if chosen["method"] != "none":
        adapter = CodeAdapter(method=chosen["method"], **options).fit(z[~many], names[~many])
        variants[f"adapted: {label(chosen)}, fitted on the other people"] = adapter.transform(z[many])
    methods = [("dbscan (auto eps: most clusters)", dict(method="dbscan", eps_rule="most-clusters")),
               ("dbscan (auto eps: knee)", dict(method="dbscan", eps_rule="knee")),
               ("hdbscan", dict(method="hdbscan", min_cluster_size=5)),
               ("agglomerative (auto threshold)", dict(method="agglomerative"))]
    rows = []
    for vname, codes in variants.items():
        eps = {rule: estimate_eps(codes, 5, rule=rule) for rule in ("most-clusters", "knee")}
        for mname, kw in methods:
            r = {"codes": vname, "method": mname, **cluster_scores(names[many], cluster(codes, **kw)), "auto_eps": eps}
            rows.append(r)
            print(r, file=sys.stderr)
    results["clustering"] = {"set": f"{int(many.sum())} images of the {len({n for n in names[many]})} people with "
                                    f">= {min_images} images; adaptation fitted on the other people's images", "rows": rows}
    return results


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    results["machine"] = machine()
    (RESULTS / f"{NAME}.json").write_text(json.dumps(results, indent=2, default=float))
    lines = [f"# dlib's face encoder on LFW ({SETTING})", "",
             f"Command: `{results['command']}`; machine: {results['machine']['platform']}, "
             f"{results['machine']['cpu_count']} cores, load {results['machine']['load_average']}.", ""]
    if "view1" in results:
        lines += ["## View 1: choosing the adaptation (pairsDevTrain fits, pairsDevTest scores)", "",
                  "| configuration | DevTest accuracy | AUC | EER |", "|---|---|---|---|"]
        for r in sorted(results["view1"]["configurations"], key=lambda r: -r["devtest_accuracy"]):
            lines.append(f"| {r['label']} | {r['devtest_accuracy']:.4f} | {r['devtest_auc']:.5f} | {r['devtest_eer']:.4f} |")
        lines += ["", f"Chosen: **{results['view1']['chosen']['label']}**.", "",
                  "## Plan for View 2 (written before View 2 was scored)", ""]
        lines += [f"- {r}" for r in results["plan"]["view2_rows"]] + ["", results["plan"]["note"], ""]
    if "view2" in results:
        v = results["view2"]
        lines += [f"## View 2 (10 folds, {SETTING})", "",
                  f"{v['configurations_scored_on_view2']} configurations scored on View 2 (all listed).", "",
                  "| model | accuracy ± s.e. | AUC | TAR@FAR=0.1% |", "|---|---|---|---|"]
        for name, r in v["rows"].items():
            auc = f"{r['auc']:.5f}" if "auc" in r else "–"
            tar = f"{r['tar_at_far'].get('0.001', float('nan')):.4f}" if "tar_at_far" in r else "–"
            lines.append(f"| {name} | {100 * r['accuracy']:.2f} % ± {100 * r['standard_error']:.2f} | {auc} | {tar} |")
        lines += ["", f"Faces found by HOG or the CNN detector in {v['located']} of {v['images']} images; "
                  f"{v['no_face_found']}. Encoding: {v['seconds_per_image']:.3f} s per image on "
                  f"{v['encode_workers']} processes (decode, detect, align, plain and mirrored codes).", ""]
    lines += identification_lines(results)
    if "clustering" in results:
        lines += ["## Clustering with no radius given", "", results["clustering"]["set"] + ".", "",
                  "| codes | method | ARI | NMI | pairwise F | noise | clusters |", "|---|---|---|---|---|---|---|"]
        for r in results["clustering"]["rows"]:
            lines.append(f"| {r['codes']} | {r['method']} | {r['ari']:.4f} | {r['nmi']:.4f} | {r['pairwise_f']:.4f} | "
                         f"{r['noise_fraction']:.3f} | {r['clusters']} |")
        lines.append("")
    (RESULTS / f"{NAME}.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--select", action="store_true", help="View 1: choose the adaptation, write the plan")
    ap.add_argument("--score", action="store_true", help="View 2: score the plan once")
    ap.add_argument("--identify", action="store_true", help="open-set identification (identification.py's split)")
    ap.add_argument("--cluster", action="store_true", help="clustering (clustering.py's set)")
    args = ap.parse_args()
    path = RESULTS / f"{NAME}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["command"] = "python " + " ".join(sys.argv)
    if args.select:
        if "view2" in results:
            raise SystemExit("View 2 was already scored with the plan on file; a new selection would tune on it")
        results = select(results)
    if args.score:
        results = score(results)
    if args.identify:
        results = identification(results, save=write)
    if args.cluster:
        results = clustering(results)
    write(results)


if __name__ == "__main__":
    main()
