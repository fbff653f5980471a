"""`facespace demo`: the main job on the embedded default data, end to end.

Load the embedded faces, train a PCA and a conv autoencoder, write a reconstruction grid, index
all 200 images with the conv model, search and morph, write the conv run's HTML report
(`report.html`, with retrieval beside PCA's), and end by printing, on stdout, the exact
`facespace serve` command that opens the web app on that model and index.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import typer

from facespace.cli._util import out as print_out
from facespace.cli._util import say


def register(app: typer.Typer, nouns: dict[str, typer.Typer]) -> None:
    """Add `demo` to `app`."""

    @app.command()
    def demo(
        out: Path = typer.Option(Path("outputs/demo"), help="Folder for the demo's outputs."),
        code_size: int = typer.Option(16, help="Length of the codes (PCA and conv)."),
        epochs: int = typer.Option(20, min=1, help="Training epochs of the conv autoencoder."),
        size: int = typer.Option(32, help="Image side in pixels."),
        seed: int = typer.Option(0, help="Random seed."),
    ) -> None:
        """Run the demo on the embedded default (scikit-image's lfw_subset) and say where its outputs are."""
        run_demo(out, code_size=code_size, size=size, seed=seed, epochs=epochs)


def run_demo(out: Path, *, code_size: int = 16, size: int = 32, seed: int = 0, epochs: int = 20) -> dict:
    """Train PCA and conv autoencoders on the embedded faces, index, search, morph, report; write under `out`.

    Returns:
        The summary written to `out/summary.json`: sizes, test MSEs, the outputs' paths and
        `serve`, the `facespace serve` command (also printed to stdout).
    """
    import numpy as np

    from facespace.models.registry import load_model, save_model
    from facespace.pipelines.codes import reconstruct
    from facespace.data import load_faces
    from facespace.files import write_bytes_atomic, write_text_atomic
    from facespace.pipelines.generation import morph
    from facespace.grid import save_grid, save_png
    from facespace.pipelines.indexing import build_index
    from facespace.reports.run_report import write_report
    from facespace.pipelines.retrieval import montage, search
    from facespace.training.recipes import train

    out.mkdir(parents=True, exist_ok=True)
    faces = load_faces("embedded", size=size, progress=False)
    face_set = faces.subset(faces.labels["is_face"])
    order = np.random.default_rng(seed).permutation(len(face_set))
    n_test = max(8, len(face_set) // 10)
    test, fit_on = face_set.subset(order[:n_test]), face_set.subset(order[n_test:])
    say(f"loaded {len(faces)} embedded images ({len(face_set)} faces); training on {len(fit_on)}, testing on {len(test)}")

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
    say(f"test MSE: PCA-{code_size} {mse['pca']:.5f}, conv-{code_size} {mse['conv']:.5f} "
        f"({epochs} epochs on {len(fit_on)} faces)")

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
    say(f"outputs in {out}/:")
    for key, path in summary["outputs"].items():
        say(f"  {key:16s} {path}")
    say(f"report of the conv run: {report_path}")
    say("browse the faces in a web app (Ctrl+C stops it):")
    print_out(serve_command)  # stdout, unwrapped: the exact command to type
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
    import numpy as np

    from facespace.pipelines.indexing import build_index
    from facespace.pipelines.retrieval import search

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
