"""The demo: the built-in models at work on the embedded faces (and on a folder the user names), in
one page.

Steps, each a verb of the public API: neighbours of four faces in an index of all 200 embedded
images (`faces-ae`), a morph between two faces (`faces-ae`), an identity gallery of ten embedded
faces that names an enrolled face again and calls a face it never saw "unknown" (`faces-id`), two
verifications at the threshold that gallery calibrated (`faces-id`: a photo against a moved and
brightened copy of itself, a face against another person's), and,
given a folder, the neighbours of its first photos. Everything lands in `out/` with `report.html`
(one self-contained page) and `summary.json`.

`run_training_demo` is the course's path instead: train a PCA and a small conv autoencoder on the
embedded faces, then index, search, morph and report the conv run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from pathlib import Path
from typing import Any, Callable, ContextManager

import numpy as np

from facespace.data.load import load_faces
from facespace.files import write_bytes_atomic, write_text_atomic
from facespace.grid import make_grid, save_grid, save_png
from facespace.models.registry import load_model, save_model
from facespace.people.gallery.gallery import Gallery
from facespace.people.verification import verify
from facespace.pipelines.codes import reconstruct
from facespace.pipelines.generation import morph
from facespace.pipelines.indexing import build_index
from facespace.pipelines.retrieval import montage, search
from facespace.reports.html import escape, page, picture, table
from facespace.reports.run_report import write_report
from facespace.training.recipes import train

Step = Callable[[str], ContextManager[Any]]


def _no_step(label: str) -> ContextManager[Any]:
    return contextlib.nullcontext()


def run_demo(out: str | os.PathLike, *, data: str | os.PathLike | None = None, step: Step = _no_step) -> dict:
    """Run the demo with the built-in models; write its pictures, `report.html` and `summary.json`.

    Args:
        out: the folder to write to.
        data: a folder of the user's photos (face crops or portraits) to index too, or None.
        step: called with each step's label; the context it returns wraps the step (a progress display).

    Returns:
        The summary written to `out/summary.json`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with step("loading the built-in models faces-ae and faces-id"):
        ae, ident = load_model("faces-ae"), load_model("faces-id")
    with step("reading the 200 embedded images (100 faces)"):
        faces = load_faces("embedded", size=ae.image_shape[0], progress=False)
        is_face = np.asarray(faces.labels["is_face"], bool)
        id_faces = load_faces("embedded", size=ident.image_shape[0], progress=False).subset(is_face)
    sections, summary = [], {"models": {"autoencoder": "faces-ae", "identity": "faces-id"}, "outputs": {}}

    with step("indexing the 200 embedded images with faces-ae and searching four faces"):
        index = build_index(ae, faces, metric="cosine")
        index_path = out / "embedded.index"
        index.save(index_path)
        queries = np.flatnonzero(is_face)[:4]
        hits = search(index, faces.images[queries], k=6, model=ae)
        tiles = [np.stack([faces.images[h["id"]] for h in row]) for row in hits]
        neighbours_picture = montage(faces.images[queries], tiles, hits, scale=3)
        neighbours = save_png(neighbours_picture, out / "neighbours.png")
        share = float(np.mean([[is_face[h["id"]] for h in row[1:]] for row in hits]))
    summary["neighbours_that_are_faces"] = round(share, 3)
    summary["outputs"].update(index=str(index_path), neighbours=str(neighbours))
    sections.append(f"<h2>Neighbours (faces-ae, cosine)</h2><p>Each row: a face, then its nearest images of the 200; "
                    f"{share:.0%} of the neighbours are faces.</p>" + picture(neighbours_picture))

    with step("morphing between two faces through faces-ae's codes"):
        a, b = faces.images[queries[0]], faces.images[queries[1]]
        strip_picture = make_grid(np.clip(morph(ae, a, b, steps=7), 0, 1), ncols=7, scale=4)
        strip = save_png(strip_picture, out / "morph.png")
    summary["outputs"]["morph"] = str(strip)
    sections.append("<h2>Morph (faces-ae)</h2>" + picture(strip_picture))

    with step("enrolling ten faces in a gallery and identifying a known face and a stranger"):
        x = id_faces.images
        gallery_path = out / "people.db"
        if gallery_path.exists():
            gallery_path.unlink()
        with Gallery(gallery_path, ident) as g:
            # each person: the face and its mirror image, so the gallery sees two photos of everyone
            g.enroll_many({f"person-{i:02d}": np.stack([x[i], x[i][:, ::-1]]) for i in range(10)}, force=True)
            shifted = np.roll(x[3], 1, axis=1)  # person-03 again, moved by a pixel
            answers = g.identify(np.stack([shifted, x[50]]))
            stranger_threshold = g.threshold
    rows = [["person-03, moved by a pixel", answers[0].name or "unknown", answers[0].distance],
            ["a face never enrolled", answers[1].name or "unknown", answers[1].distance]]
    summary["gallery"] = {"people": 10, "threshold": stranger_threshold,
                          "answers": [{"probe": r[0], "name": r[1], "distance": round(float(r[2]), 4)} for r in rows]}
    summary["outputs"]["gallery"] = str(gallery_path)

    with step("verifying two pairs with faces-id"):
        # faces-id's stored threshold was set on 250x250 LFW photos; these are 25x25 crops, whose
        # distances run smaller, so the pairs are judged at the threshold the gallery set on them
        moved = np.clip(np.roll(x[5], 2, axis=0) * 1.1, 0, 1)
        checks = [("face 5 and the same photo moved 2 px, 10 % brighter", *verify(ident, x[5], moved,
                                                                                  max_distance=stranger_threshold)),
                  ("face 0 and face 1 (two people)", *verify(ident, x[0], x[1], max_distance=stranger_threshold))]
    stored = float(ident.checkpoint_info["extra"]["verify"]["threshold"])
    summary["verification"] = [{"pair": p, "distance": round(d, 4), "same": s} for p, d, s in checks]
    sections.append(f"<h2>Verification (faces-id, cosine)</h2><p>Judged at {stranger_threshold:.3f}, the threshold "
                    f"the gallery below calibrated on these faces: faces-id's own ({stored:.3f}) was set on 250x250 "
                    "LFW photos, and the embedded faces are 25x25 crops, whose distances run smaller.</p>"
                    + table(["pair", "distance", "same person?"], [[p, d, "yes" if s else "no"] for p, d, s in checks]))
    sections.append(f"<h2>Identity gallery (faces-id)</h2><p>Ten embedded faces enrolled, each with its mirror "
                    f"image; the stranger threshold the gallery calibrated: {stranger_threshold:.3f}.</p>"
                    + table(["probe", "named", "distance"], rows))

    if data is not None:
        with step(f"indexing {data} with faces-ae"):
            theirs = load_faces(str(data), size=ae.image_shape[0], progress=False)
            their_index = build_index(ae, theirs, metric="cosine")
            first = theirs.images[: min(4, len(theirs))]
            found = search(their_index, first, k=min(6, len(theirs)), model=ae)
            their_tiles = [np.stack([theirs.images[h["id"]] for h in row]) for row in found]
            their_picture = montage(first, their_tiles, found, scale=3)
            path = save_png(their_picture, out / "data_neighbours.png")
        summary["outputs"]["data_neighbours"] = str(path)
        summary["data"] = {"source": str(data), "images": len(theirs)}
        sections.append(f"<h2>Your photos: {escape(data)}</h2>" + picture(their_picture))

    report = out / "report.html"
    write_text_atomic(report, page("facespace demo", "<h1>facespace demo: the built-in models</h1>" + "".join(sections)))
    summary["outputs"]["report"] = str(report)
    summary["serve"] = f"facespace serve --index {index_path} --gallery {gallery_path}"
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def run_training_demo(out: Path, *, code_size: int = 16, size: int = 32, seed: int = 0, epochs: int = 20) -> dict:
    """Train PCA and conv autoencoders on the embedded faces, index, search, morph, report; write under `out`.

    Returns:
        The summary written to `out/summary.json`: sizes, test MSEs, the outputs' paths and
        `serve`, the `facespace serve` command (also printed to stdout).
    """
    out.mkdir(parents=True, exist_ok=True)
    faces = load_faces("embedded", size=size, progress=False)
    face_set = faces.subset(faces.labels["is_face"])
    order = np.random.default_rng(seed).permutation(len(face_set))
    n_test = max(8, len(face_set) // 10)
    test, fit_on = face_set.subset(order[:n_test]), face_set.subset(order[n_test:])

    # 1. PCA autoencoder (closed form) and a small conv autoencoder
    pca_path = save_model(train("pca", fit_on, code_size=code_size), out / "pca.safetensors")
    pca = load_model(pca_path)
    # B1's best measured recipe: batch norm, linear code, a PCA skip the conv net corrects, flips, one-cycle
    conv = train(
        "conv", fit_on, code_size=code_size, epochs=epochs, out=out / "conv-run", progress=False, seed=seed,
        arch="bn", code_activation="linear", pca_skip=True, flip=True, schedule="onecycle", lr=2e-3,
    )
    mse = {}
    rows = [test.images[:8]]
    for name, model in (("pca", pca), ("conv", conv)):
        recon = np.clip(reconstruct(model, test.images), 0, 1)
        mse[name] = float(np.mean((recon - test.images) ** 2))
        rows.append(recon[:8])
    grid_path = save_grid(np.concatenate(rows), out / "reconstructions.png", ncols=8, scale=4)

    # 2. the index the web app serves: all 200 embedded images through the conv model, L2 distance
    # (on these faces L2 finds faces for faces far more often than cosine: see conv-run/eval/retrieval.json)
    conv_path = out / "conv-run" / "best.safetensors"
    served = load_model(conv_path)
    index = build_index(served, faces, metric="l2")
    index_path = out / "embedded.index"
    index.save(index_path)
    queries = test.images[:4]
    hits = search(index, queries, k=6, model=served)
    # the embedded images have no files; ids are positions in `faces`, so show the images themselves
    tiles = [np.stack([faces.images[h["id"]] for h in row]) for row in hits]
    neighbours_path = save_png(montage(queries, tiles, hits, scale=3), out / "neighbours.png")
    # the embedded set has no names, but knows which images are faces (ids are positions in `faces`)
    faces_found = np.mean([[faces.labels["is_face"][h["id"]] for h in row] for row in hits])

    # 3. a morph between two held-out faces through the conv autoencoder
    strip = morph(conv, test.images[0], test.images[1], steps=7)
    morph_path = save_grid(np.clip(strip, 0, 1), out / "morph.png", ncols=7, scale=4)

    # 4. the conv run's report, with retrieval beside PCA's, the comparison grid and the morph
    eval_dir = out / "conv-run" / "eval"
    write_text_atomic(eval_dir / "retrieval.json", json.dumps(retrieval_table({"pca": pca, "conv": served}, faces)))
    write_bytes_atomic(eval_dir / "reconstructions_originals_pca_conv.png", grid_path.read_bytes())
    write_bytes_atomic(eval_dir / "morph.png", morph_path.read_bytes())
    report_path = write_report(out / "conv-run", out / "report.html")
    serve = ["facespace", "serve", "--model", typed_path(conv_path), "--index", typed_path(index_path)]
    serve_command = " ".join(shlex.quote(a) for a in serve)

    summary = {
        "data": faces.source,
        "images": len(faces),
        "train_faces": len(fit_on),
        "test_faces": len(test),
        "code_size": code_size,
        "test_mse": {k: round(v, 6) for k, v in mse.items()},
        "neighbours_that_are_faces": round(float(faces_found), 3),
        "outputs": {
            "pca_model": str(pca_path),
            "conv_run": str(out / "conv-run"),
            "index": str(index_path),
            "reconstructions": str(grid_path),
            "neighbours": str(neighbours_path),
            "morph": str(morph_path),
            "report": str(report_path),
        },
        "serve": serve_command,
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def typed_path(path: Path) -> str:
    """`path` as the user would type it: relative to the working folder when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def retrieval_table(models: dict, faces) -> dict:
    """Leave-one-out retrieval on the embedded set, per model and metric: how often the 5 nearest
    other images are of the same class (face or not face) as the query. A `facespace.reports.run_report` table."""
    is_face = np.asarray(faces.labels["is_face"], bool)
    rows = []
    for name, model in models.items():
        for metric in ("l2", "cosine"):
            index = build_index(model, faces, metric=metric)
            hits = search(index, faces.images, k=6, model=model)
            others = [[h["id"] for h in row if h["id"] != q][:5] for q, row in enumerate(hits)]
            same = is_face[np.array(others)] == is_face[:, None]  # (200, 5)
            rows.append([name, metric, round(float(same[is_face].mean()), 3), round(float(same[~is_face].mean()), 3)])
    return {
        "title": "neighbours of the same class (5 nearest, leave-one-out, all 200 embedded images)",
        "note": "face queries: share of neighbours that are faces; non-face queries: share that are not",
        "columns": ["model", "metric", "face queries", "non-face queries"],
        "rows": rows,
    }
