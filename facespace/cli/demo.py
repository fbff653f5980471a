"""`facespace demo`: the main job on the embedded default data, end to end.

It grows with the project: load the embedded faces, train a PCA autoencoder, write a
reconstruction grid (originals over reconstructions), and report where everything is.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from facespace.cli._util import say


def register(app: typer.Typer) -> None:
    """Add `demo` to `app`."""

    @app.command()
    def demo(
        out: Path = typer.Option(Path("outputs/demo"), help="Folder for the demo's outputs."),
        code_size: int = typer.Option(16, help="Length of the PCA code."),
        size: int = typer.Option(32, help="Image side in pixels."),
        seed: int = typer.Option(0, help="Random seed."),
    ) -> None:
        """Run the demo on the embedded default (scikit-image's lfw_subset) and say where its outputs are."""
        run_demo(out, code_size=code_size, size=size, seed=seed)


def run_demo(out: Path, *, code_size: int = 16, size: int = 32, seed: int = 0) -> dict:
    """Train PCA and conv autoencoders on the embedded faces, index them, search, morph; write under `out`."""
    import numpy as np

    from facespace.checkpoint import load_model, save_model
    from facespace.codes import reconstruct
    from facespace.data import load_faces
    from facespace.files import write_text_atomic
    from facespace.generate import morph
    from facespace.grid import save_grid, save_png
    from facespace.index import build_index
    from facespace.search import montage, result_images, search
    from facespace.train import train

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
        "conv", fit_on, code_size=code_size, epochs=20, out=out / "conv-run", progress=False, seed=seed,
        arch="bn", code_activation="linear", pca_skip=True, flip=True, schedule="onecycle", lr=2e-3,
    )
    mse = {}
    rows = [test.images[:8]]
    for name, model in (("pca", pca), ("conv", conv)):
        recon = np.clip(reconstruct(model, test.images), 0, 1)
        mse[name] = float(np.mean((recon - test.images) ** 2))
        rows.append(recon[:8])
    grid_path = save_grid(np.concatenate(rows), out / "reconstructions.png", ncols=8, scale=4)
    say(f"test MSE: PCA-{code_size} {mse['pca']:.5f}, conv-{code_size} {mse['conv']:.5f} (20 epochs on {len(fit_on)} faces)")

    # 2. an index of all 200 embedded images, and the neighbours of four held-out faces
    index = build_index(pca, faces, metric="cosine")
    index_path = out / "embedded.index"
    index.save(index_path)
    queries = test.images[:4]
    hits = search(index, queries, k=6, model=pca)
    tiles = result_images(index, hits, size=size, model=pca)
    neighbours_path = save_png(montage(queries, tiles, hits, scale=3), out / "neighbours.png")
    # the embedded set has no names, but knows which images are faces (ids are positions in `faces`)
    faces_found = np.mean([[faces.labels["is_face"][h["id"]] for h in row] for row in hits])

    # 3. a morph between two held-out faces through the conv autoencoder
    strip = morph(conv, test.images[0], test.images[1], steps=7)
    morph_path = save_grid(np.clip(strip, 0, 1), out / "morph.png", ncols=7, scale=4)

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
        },
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    say(f"outputs in {out}/:")
    for key, path in summary["outputs"].items():
        say(f"  {key:16s} {path}")
    say(f"try: facespace search {index_path} <image> -k 5   |   facespace morph {out / 'conv-run'} A.jpg B.jpg --out m.png")
    return summary
