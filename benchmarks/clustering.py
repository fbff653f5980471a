"""Clustering LFW faces by person: DBSCAN, HDBSCAN and agglomerative on several codes.

The faces are every image of the people with >= 10 images (158 people, 4,324 images). Codes: raw
pixels, PCA fitted only on the other people's images (those with < 10), and any checkpoints given
with --models (used as they are). Each clustering is scored against the true identities: adjusted
Rand index, NMI, pairwise F-measure (noise points count as singletons) and the fraction of faces
left as noise. An agglomerative run told the true number of people is a reference, not a method.
Checkpoints see the images cut with the crop they recorded. --verifier-retrain CKPT adds a verifier
that never saw a clustered person: a fresh network with CKPT's settings (network, objective, loop,
crop) trained here on the other people's images only (those with < 10 images; with >= 2 of them).

    .venv/bin/python benchmarks/clustering.py [--models runs/verifier/best.safetensors ...]
    .venv/bin/python benchmarks/clustering.py --verifier-retrain runs/v48/best.safetensors

Writes benchmarks/results/clustering.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verification import LFW, RESULTS, verifier_retrained, write_results  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=LFW / "lfw-deepfunneled")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--min-images", type=int, default=10)
    ap.add_argument("--pca", type=int, nargs="*", default=[32])
    ap.add_argument("--models", type=Path, nargs="*", default=[])
    ap.add_argument("--verifier-retrain", type=Path, nargs="*", default=[],
                    help="verifier checkpoints whose settings train a fresh network on the other people only")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from facespace.models.registry import load_model
    from facespace.people.clustering import cluster, cluster_scores, estimate_eps
    from facespace.data.crops import model_crop
    from facespace.data import load_faces
    from facespace.models.pca import PCAAutoencoder
    from facespace.models.pixels import PixelEncoder

    def faces_for(size: int, grey: bool, crop="lfw"):
        all_faces = load_faces(str(args.lfw), size=size, crop=crop, grayscale=grey, progress=False)
        many = all_faces.counts() >= args.min_images
        return all_faces.subset(np.flatnonzero(many)), all_faces.subset(np.flatnonzero(~many))

    faces, others = faces_for(args.size, False)
    truth = faces.names
    n_people = len(set(truth.tolist()))
    print(f"{len(faces)} faces of {n_people} people; PCA fitted on {len(others)} other images", file=sys.stderr)
    runs = [("raw pixels", PixelEncoder(size=args.size, channels=3).encode(faces.images))]
    for d in args.pca:
        runs.append((f"pca-{d}", PCAAutoencoder(code_size=d).fit(others.images).encode(faces.images)))
    for path in args.models:
        m = load_model(path)
        f, _ = faces_for(m.image_shape[0], m.image_shape[2] == 1, model_crop(m))
        assert (f.names == truth).all()
        runs.append((f"{m.kind} ({path})", m.encode(f.images)))
    for path in args.verifier_retrain:
        m = load_model(path, kind="verifier")
        f, rest = faces_for(m.image_shape[0], m.image_shape[2] == 1, model_crop(m))
        assert (f.names == truth).all()
        fresh = verifier_retrained(path, rest, args.threads, f"the people with < {args.min_images} images")
        runs.append((f"verifier retrained without these people ({path})", fresh.encode(f.images)))
    methods = [
        ("dbscan (auto eps: most clusters)", dict(method="dbscan", eps_rule="most-clusters")),
        ("dbscan (auto eps: knee)", dict(method="dbscan", eps_rule="knee")),
        ("hdbscan", dict(method="hdbscan", min_cluster_size=5)),
        ("agglomerative (auto threshold)", dict(method="agglomerative")),
        (f"agglomerative, told {n_people} clusters (reference)", dict(method="agglomerative", n_clusters=n_people, min_cluster_size=1)),
    ]
    rows = []
    for label, codes in runs:
        eps = {rule: estimate_eps(codes, 5, rule=rule) for rule in ("most-clusters", "knee")}
        for mlabel, kw in methods:
            t0 = time.time()
            labels = cluster(codes, **kw)
            r = {"codes": label, "method": mlabel, **cluster_scores(truth, labels), "seconds": round(time.time() - t0, 2),
                 "auto_eps": eps}
            rows.append(r)
            print(r, file=sys.stderr, flush=True)
    lines = ["| codes | method | ARI | NMI | pairwise F | noise | clusters | seconds |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['codes']} | {r['method']} | {r['ari']:.4f} | {r['nmi']:.4f} | {r['pairwise_f']:.4f} | "
                     f"{r['noise_fraction']:.3f} | {r['clusters']} | {r['seconds']} |")
    notes = (f"LFW deep-funneled, {args.size}x{args.size} RGB, cosine distance; {len(faces)} images of the {n_people} "
             f"people with >= {args.min_images} images (true clusters: {n_people}). DBSCAN's eps is chosen on the "
             "k-distance curve (k = min_samples = 5): the stable radius with the most clusters (the default), or "
             "the curve's knee; agglomerative uses average linkage with twice the knee's radius as its "
             "threshold and counts groups under 5 faces as noise. Noise points are singletons for ARI/NMI/F.")
    if args.verifier_retrain:
        notes += (f" The retrained verifier learnt only from the people with < {args.min_images} images (those with "
                  ">= 2), with its checkpoint's settings (size, colour, crop): it never saw a clustered person.")
    write_results("clustering", rows, "\n".join(lines), notes, results_dir=args.results_dir)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
