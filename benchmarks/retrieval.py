"""Same-person retrieval on LFW: which codes find a face's other photos? The table to pick a model.

Queries: one photo (chosen with a fixed seed) of every person with at least two photos in LFW,
1,680 queries. Gallery: every other LFW photo (11,553), so each query has at least one photo of
the same person to find. Each method encodes gallery and queries; the facespace exact index finds
the 10 nearest gallery photos per query (cosine and l2). Reported: precision@1 (the nearest photo
is the same person) and mean average precision@10 (AP over the top 10, divided by min(10, number
of the person's gallery photos)), with chance levels.

Built-in methods: "pixels" (the 32x32 RGB pixels themselves) and "pca" (facespace's PCA
autoencoder, 32 and 128 components, fitted on the gallery only). `--train conv:20` trains an
autoencoder of that kind on the gallery photos only (`facespace.training.recipes.train`), then evaluates it.
Checkpoints trained elsewhere are added with
`--model NAME=PATH`; they must have been trained without the query photos: the query list is
written to benchmarks/results/retrieval_queries.txt (one path per line) for that purpose, and
a checkpoint's training data cannot be checked here, so say how it was trained in its NAME.

    .venv/bin/python benchmarks/retrieval.py
    .venv/bin/python benchmarks/retrieval.py --train conv:20 --train denoise:20 --runs runs \\
        --train-option arch=bn --train-option code_activation=linear --train-option schedule=onecycle
    .venv/bin/python benchmarks/retrieval.py --no-builtin --model conv=runs/conv_gallery/best.safetensors
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LFW = Path(os.environ.get("FACESPACE_SHARED", ROOT.parent / "shared" / "data")) / "lfw" / "lfw-deepfunneled"
K = 10


def split(names: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(query rows, gallery rows)`: one random photo of each person having two or more."""
    rng = np.random.default_rng(seed)
    queries = []
    for name in np.unique(names):
        rows = np.flatnonzero(names == name)
        if len(rows) >= 2:
            queries.append(rng.choice(rows))
    queries = np.sort(np.asarray(queries))
    return queries, np.setdiff1d(np.arange(len(names)), queries)


def scores(found_names: np.ndarray, query_names: np.ndarray, relevant: np.ndarray) -> tuple[float, float]:
    """precision@1 and mAP@10 from `(n, K)` names of the results."""
    hit = found_names == query_names[:, None]  # (n, K)
    precision_at = np.cumsum(hit, 1) / np.arange(1, K + 1)
    ap = (precision_at * hit).sum(1) / np.minimum(relevant, K)
    return float(hit[:, 0].mean()), float(ap.mean())


def chance(query_names: np.ndarray, gallery_names: np.ndarray) -> float:
    counts = dict(zip(*np.unique(gallery_names, return_counts=True)))
    return float(np.mean([counts.get(n, 0) for n in query_names]) / len(gallery_names))


def evaluate(label: str, g: np.ndarray, q: np.ndarray, gnames, qnames, relevant, log) -> list[dict]:
    from facespace.index import Index

    rows = []
    for metric in ("cosine", "l2"):
        index = Index(g.shape[1], metric=metric)
        index.add(g)
        _, ids = index.search(q, K)
        p1, m10 = scores(gnames[ids], qnames, relevant)
        rows.append({"method": label, "dim": int(g.shape[1]), "metric": metric, "precision@1": round(p1, 4), "mAP@10": round(m10, 4)})
        log(f"  {label:30s} {metric:6s} d={g.shape[1]:5d}  P@1 {p1:.4f}  mAP@10 {m10:.4f}")
    return rows


def parse_option(text: str) -> tuple[str, object]:
    """`"lr=0.002"` -> `("lr", 0.002)`: ints, floats and true/false become numbers and booleans."""
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--train-option expects KEY=VALUE, e.g. arch=bn; got {text!r}")
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def encode_all(model, images: np.ndarray) -> np.ndarray:
    from facespace.pipelines.codes import encode

    return encode(model, images)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=CHECKPOINT (repeat)")
    parser.add_argument("--train", action="append", default=[],
                        help="KIND[:EPOCHS] (repeat): train that autoencoder on the gallery photos only, then evaluate it")
    parser.add_argument("--train-option", action="append", default=[],
                        help="KEY=VALUE (repeat): a training option for every --train model, e.g. arch=bn")
    parser.add_argument("--runs", help="folder for the run folders of --train models (default: in memory only)")
    parser.add_argument("--size", type=int, default=32, help="image side for the built-in methods")
    parser.add_argument("--no-builtin", action="store_true", help="only the --model checkpoints")
    parser.add_argument("--out", default=str(RESULTS / "retrieval"), help="results path without extension")
    args = parser.parse_args(argv)

    import torch

    from facespace.data import load_faces
    from facespace.files import write_text_atomic

    torch.set_num_threads(os.cpu_count() or 1)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    load_before = os.getloadavg()
    faces = load_faces(LFW, size=args.size, progress=False)
    qi, gi = split(faces.names)
    qnames, gnames = faces.names[qi], faces.names[gi]
    counts = dict(zip(*np.unique(gnames, return_counts=True)))
    relevant = np.array([counts[n] for n in qnames])
    write_text_atomic(RESULTS / "retrieval_queries.txt", "\n".join(map(str, faces.paths[qi])) + "\n")
    log(f"LFW {len(faces)} photos at {args.size}px: {len(qi)} queries, {len(gi)} gallery; chance P@1 {chance(qnames, gnames):.4f}")

    rows: list[dict] = []
    if not args.no_builtin:
        flat = faces.images.reshape(len(faces), -1)
        rows += evaluate(f"pixels {args.size}x{args.size} RGB", flat[gi], flat[qi], gnames, qnames, relevant, log)
        from facespace.models.pca import PCAAutoencoder

        for d in (32, 128):
            pca = PCAAutoencoder(code_size=d).fit(faces.images[gi])
            rows += evaluate(f"pca {d} (fitted on the gallery)", pca.encode(faces.images[gi]), pca.encode(faces.images[qi]),
                             gnames, qnames, relevant, log)  # fmt: skip
    gallery = faces.subset(gi)
    options = dict(parse_option(o) for o in args.train_option)
    for spec in args.train:
        from facespace.training.recipes import train

        kind, _, epochs = spec.partition(":")
        run = Path(args.runs) / f"retrieval_{kind}" if args.runs else None
        t = time.perf_counter()
        model = train(kind, gallery, out=run, code_size=32, epochs=int(epochs or 10), size=args.size, progress=False, **options)
        log(f"trained {kind} on the gallery in {time.perf_counter() - t:.0f} s")
        shown = ", ".join(f"{k}={v}" for k, v in options.items())
        label = f"{kind} 32, {epochs or 10} epochs{', ' + shown if shown else ''} (trained on the gallery, {time.perf_counter() - t:.0f} s)"
        rows += evaluate(label, encode_all(model, faces.images[gi]), encode_all(model, faces.images[qi]), gnames, qnames, relevant, log)
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--model expects NAME=CHECKPOINT; got {spec!r}")
        from facespace.models.registry import load_model
        from facespace.pipelines.codes import encode

        model = load_model(path)
        h, w, c = model.image_shape
        mf = faces if (h, c) == (args.size, 3) else load_faces(LFW, size=h, grayscale=c == 1, progress=False)
        codes = encode(model, mf.images)
        rows += evaluate(name, codes[gi], codes[qi], gnames, qnames, relevant, log)

    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "load_average_before": [round(v, 2) for v in load_before]},  # fmt: skip
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__},
        "queries": int(len(qi)), "gallery": int(len(gi)), "chance_precision@1": round(chance(qnames, gnames), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    out = Path(args.out)
    write_text_atomic(out.with_suffix(".json"), json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["| method | code size | metric | precision@1 | mAP@10 |", "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['dim']} | {r['metric']} | {r['precision@1']} | {r['mAP@10']} |" for r in rows]
    md = [
        "# Same-person retrieval on LFW", "",
        f"Queries: one photo of each of the {len(qi)} people with two or more photos; gallery: the other "
        f"{len(gi)} photos. Exact search (facespace `Index`), k = {K}. Chance precision@1: "
        f"{meta['chance_precision@1']}. Query list: `benchmarks/results/retrieval_queries.txt`.", "",
        *lines, "",
        f"- date: {meta['date']}", f"- command: `{meta['command']}`",
        f"- machine: {meta['machine']['cpu_count']} CPUs, {meta['machine']['platform']}, load average {meta['machine']['load_average_before']}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}", f"- time: {meta['seconds']} s", "",
    ]  # fmt: skip
    write_text_atomic(out.with_suffix(".md"), "\n".join(md))
    log(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
