"""Persistent face groups on LFW: incremental adds against re-clustering, and corrections that stick.

Faces: every image of the people with >= 10 images (158 people, 4,324 images, 32x32 RGB). Codes:
PCA-32, and PCA-128 + LDA-64 (Fisherfaces), both fitted only on the other LFW people (< 10 images),
so no tested person is seen in fitting. Everything runs through `facespace.people.groups.groups.FaceGroups` on a
real gallery file.

1. Incremental: 70 % of the faces (random) are added and clustered; the other 30 % are added
   incrementally (each joins its nearest grouped face's group within the join radius). Compared with
   re-clustering all faces: ARI against the true people for both, the share of new faces that joined a
   group and how many of those joined a group whose majority is their own person, and the share of
   the first groups' faces that keep their group id after the full re-clustering, beside the share
   that would keep it with the clustering's own numbering (the reference without id matching).
2. Corrections: after clustering all faces, a simulated user gives k links from the truth, each on a
   current mistake: half cannot-links between two faces of different people in one group, half
   must-links between two faces of one person in different groups (or ungrouped). ARI before, after the
   links, and after a re-clustering; and whether every link still holds after it.

    .venv/bin/python benchmarks/groups.py

Writes benchmarks/results/groups.{json,md} and benchmarks/results/groups_example.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verification import LFW, RESULTS, write_results  # noqa: E402


@dataclass(frozen=True)
class FisherConfig:
    size: int = 32
    pca: int = 128
    lda: int = 64


class FisherEncoder:
    """PCA then LDA (Fisherfaces) as an `Encoder`, fitted on other people; a benchmark-only model."""

    kind = "fisherfaces_benchmark"

    def __init__(self, images: np.ndarray, people: np.ndarray, config: FisherConfig = FisherConfig()):
        from sklearn.decomposition import PCA
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        self.config = config
        x = images.reshape(len(images), -1)
        self.pca = PCA(config.pca, random_state=0).fit(x)
        self.lda = LinearDiscriminantAnalysis(n_components=config.lda).fit(self.pca.transform(x), people)
        self.checkpoint_info: dict = {}

    image_shape = property(lambda self: (self.config.size, self.config.size, 3))
    code_size = property(lambda self: self.config.lda)

    def encode(self, images: np.ndarray) -> np.ndarray:
        return self.lda.transform(self.pca.transform(images.reshape(len(images), -1))).astype(np.float32)


def labels_of(g, face_ids: np.ndarray) -> np.ndarray:
    group_of = {f: gid for f, _, _, gid in g.faces()}
    return np.array([group_of[int(f)] for f in face_ids], np.int64)


def majority_ok(labels: np.ndarray, truth: np.ndarray, rows: np.ndarray) -> float:
    """Of `rows` that are grouped, the share whose group's majority person is their own."""
    ok = []
    for r in rows:
        if labels[r] >= 0:
            members = truth[labels == labels[r]]
            values, counts = np.unique(members, return_counts=True)
            ok.append(values[np.argmax(counts)] == truth[r])
    return float(np.mean(ok)) if ok else float("nan")


def incremental(model, codes, truth, method, options, seed, workdir):
    from facespace.people.clustering import cluster, cluster_scores
    from facespace.people.groups.groups import FaceGroups

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(codes))
    base, new = np.sort(order[: int(0.7 * len(codes))]), np.sort(order[int(0.7 * len(codes)) :])
    with FaceGroups(workdir / f"inc-{method}-{model.kind}.db", model) as g:
        ids_base = g.add(codes[base]).face_ids
        t0 = time.time()
        g.recluster(method, **options)
        t_first = time.time() - t0
        first = labels_of(g, ids_base)
        raw_first = cluster(codes[base], method, **options)  # what the clustering numbers them as
        t0 = time.time()
        added = g.add(codes[new])
        t_add = time.time() - t0
        ids = np.concatenate([ids_base, added.face_ids])
        rows = np.concatenate([base, new])
        inc = labels_of(g, ids)
        t0 = time.time()
        g.recluster(method, **options)
        t_full = time.time() - t0
        full = labels_of(g, ids)
        raw_full = cluster(codes[rows], method, **options)
    t = truth[rows]
    new_rows = np.arange(len(base), len(rows))
    grouped_first = first >= 0
    from sklearn.metrics import adjusted_rand_score

    def singles(x):
        x = x.copy()
        x[x < 0] = x.max(initial=0) + 1 + np.arange((x < 0).sum())
        return x

    return {
        "ari_first_70": cluster_scores(truth[base], first)["ari"],
        "ari_incremental": cluster_scores(t, inc)["ari"],
        "ari_recluster_all": cluster_scores(t, full)["ari"],
        "ari_incremental_vs_recluster": float(adjusted_rand_score(singles(inc), singles(full))),
        "new_joined": float((inc[new_rows] >= 0).mean()),
        "joins_to_own_person_group": majority_ok(inc, t, new_rows),
        "recluster_joins_own_person_group": majority_ok(full, t, new_rows),
        "ids_kept_faces": float((full[: len(base)][grouped_first] == first[grouped_first]).mean()),
        "ids_kept_faces_without_matching": float((raw_full[: len(base)][raw_first >= 0] == raw_first[raw_first >= 0]).mean()),
        "group_ids_kept": float(np.isin(np.unique(first[grouped_first]), full).mean()),
        "groups_first": int(len(np.unique(first[grouped_first]))),
        "groups_after": int(len(np.unique(full[full >= 0]))),
        "seconds_first_cluster": round(t_first, 2), "seconds_add_30": round(t_add, 2),
        "seconds_recluster_all": round(t_full, 2),
    }


def corrections(model, codes, truth, method, options, k, seed, workdir):
    """Cluster all, give k links on current mistakes, re-cluster: ARI before/after and links held."""
    from facespace.people.clustering import cluster_scores
    from facespace.people.groups.groups import FaceGroups

    rng = np.random.default_rng(seed)
    path = workdir / f"corr-{method}-{model.kind}-{k}.db"
    with FaceGroups(path, model) as g:
        ids = g.add(codes).face_ids
        g.recluster(method, **options)
        before = labels_of(g, ids)
        links = []
        t0 = time.time()
        for i in range(k):
            lab = labels_of(g, ids)
            if i % 2 == 0:  # a group holding two people: "these two are different"
                groups = [c for c in np.unique(lab[lab >= 0]) if len(np.unique(truth[lab == c])) > 1]
                if groups:
                    rows = np.flatnonzero(lab == rng.choice(groups))
                    a = rng.choice(rows)
                    b = rng.choice(rows[truth[rows] != truth[a]])
                    g.cannot_link(ids[a], ids[b])
                    links.append((a, b, False))
                    continue
            # one person in two places: "these two are the same"
            people = [p for p in np.unique(truth) if len(np.unique(lab[truth == p])) > 1 or (lab[truth == p] < 0).all()]
            rows = np.flatnonzero(truth == rng.choice(people))
            a = rng.choice(rows)
            other = rows[(lab[rows] != lab[a]) | (lab[rows] < 0)]
            b = rng.choice(other[other != a])
            g.must_link(ids[a], ids[b])
            links.append((a, b, True))
        t_links = time.time() - t0
        linked = labels_of(g, ids)
        t0 = time.time()
        g.recluster(method, **options)
        t_re = time.time() - t0
        after = labels_of(g, ids)
        held = all((after[a] == after[b] and after[a] >= 0) if same else (after[a] != after[b] or after[a] < 0)
                   for a, b, same in links)
        groups = g.groups()
        example = None
        if k == max(ARGS.k):
            big = sorted(groups, key=len, reverse=True)[:6]
            example = [np.array([np.flatnonzero(ids == f)[0] for f in x.face_ids[:10]]) for x in big]
    return {
        "k": k, "must": sum(s for *_, s in links), "cannot": sum(not s for *_, s in links),
        "ari_before": cluster_scores(truth, before)["ari"], "ari_after_links": cluster_scores(truth, linked)["ari"],
        "ari_after_recluster": cluster_scores(truth, after)["ari"], "all_links_held_after_recluster": held,
        "seconds_links": round(t_links, 2), "seconds_recluster": round(t_re, 2),
    }, example


ARGS = None


def main() -> None:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=LFW / "lfw-deepfunneled")
    ap.add_argument("--min-images", type=int, default=10)
    ap.add_argument("--k", type=int, nargs="*", default=[20, 50, 100])
    ap.add_argument("--seed", type=int, default=0)
    ARGS = args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from facespace.data import load_faces
    from facespace.grid import save_grid
    from facespace.models.pca import PCAAutoencoder

    t_start = time.process_time()
    all_faces = load_faces(str(args.lfw), size=32, progress=False)
    many = all_faces.counts() >= args.min_images
    faces, others = all_faces.subset(np.flatnonzero(many)), all_faces.subset(np.flatnonzero(~many))
    truth = np.unique(faces.names, return_inverse=True)[1]
    multi = others.subset(np.flatnonzero(others.counts() >= 2))
    models = [PCAAutoencoder(code_size=32).fit(others.images), FisherEncoder(multi.images, multi.names)]
    names = {models[0].kind: "pca-32", models[1].kind: "pca-128 + lda-64"}
    methods = [("hdbscan", dict(min_cluster_size=5, min_samples=5)), ("agglomerative", dict())]
    inc_rows, corr_rows, example = [], [], None
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for model in models:
            codes = model.encode(faces.images)
            for method, options in methods:
                r = {"codes": names[model.kind], "method": method,
                     **incremental(model, codes, truth, method, options, args.seed, workdir)}
                inc_rows.append(r)
                print(r, file=sys.stderr, flush=True)
            for k in args.k:
                r, ex = corrections(model, codes, truth, "hdbscan", methods[0][1], k, args.seed, workdir)
                r = {"codes": names[model.kind], "method": "hdbscan", **r}
                corr_rows.append(r)
                print(r, file=sys.stderr, flush=True)
                if ex is not None and model is models[-1]:
                    example = ex
    if example:
        tiles = np.concatenate([np.concatenate([faces.images[rows], np.ones((10 - len(rows), 32, 32, 3), np.float32)])
                                for rows in example])
        save_grid(tiles, RESULTS / "groups_example.png", ncols=10, scale=2)
    t1 = ["| codes | method | ARI first 70 % | ARI incremental (+30 %) | ARI re-cluster all | incremental vs re-cluster (ARI) "
          "| new faces joined | joins to own person's group (incr. / re-cluster) | faces keeping group id (matched / raw labels) "
          "| group ids kept | s: add 30 % / re-cluster all |", "|" + "---|" * 11]
    for r in inc_rows:
        ratio = r["ids_kept_faces"] / max(r["ids_kept_faces_without_matching"], 1e-9)
        t1.append(f"| {r['codes']} | {r['method']} | {r['ari_first_70']:.4f} | {r['ari_incremental']:.4f} | "
                  f"{r['ari_recluster_all']:.4f} | {r['ari_incremental_vs_recluster']:.3f} | {r['new_joined']:.3f} | "
                  f"{r['joins_to_own_person_group']:.3f} / {r['recluster_joins_own_person_group']:.3f} | "
                  f"{r['ids_kept_faces']:.3f} / {r['ids_kept_faces_without_matching']:.3f} ({ratio:.1f}x) | "
                  f"{r['group_ids_kept']:.3f} | {r['seconds_add_30']} / {r['seconds_recluster_all']} |")
    t2 = ["| codes | k links (must / cannot) | ARI before | ARI after links | ARI after re-cluster | all links held | "
          "s: links / re-cluster |", "|---|---|---|---|---|---|---|"]
    for r in corr_rows:
        t2.append(f"| {r['codes']} | {r['k']} ({r['must']} / {r['cannot']}) | {r['ari_before']:.4f} | "
                  f"{r['ari_after_links']:.4f} | {r['ari_after_recluster']:.4f} | {r['all_links_held_after_recluster']} | "
                  f"{r['seconds_links']} / {r['seconds_recluster']} |")
    cpu = time.process_time() - t_start
    notes = (f"LFW deep-funneled 32x32 RGB, cosine distance; {len(faces)} images of the {truth.max() + 1} people with "
             f">= {args.min_images} images. Codes fitted on the other {len(others)} images (LDA on the "
             f"{len(multi)} of people with 2-9 images). HDBSCAN min_cluster_size = min_samples = 5; agglomerative: "
             "average linkage, automatic threshold, groups under 5 faces are noise. Noise counts as singletons for "
             f"ARI. Split seed {args.seed}. Total CPU {cpu:.0f} s.\n\n"
             "Faces keeping group id: of the first clustering's grouped faces, the share whose group id is the same "
             "after re-clustering all faces, with facespace's overlap matching, beside the share keeping the "
             "clustering's own label number (the reference without matching).")
    table = "## Incremental adds vs re-clustering\n\n" + "\n".join(t1) + "\n\n## Corrections from a simulated user\n\n" + "\n".join(t2)
    write_results("groups", inc_rows + corr_rows, table, notes)
    print(table)


if __name__ == "__main__":
    main()
