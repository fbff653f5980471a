"""The course notebook's steps with facespace, one call each, writing the same pictures.

The course builds, in Keras: a PCA autoencoder (a linear encoder and decoder), a deep convolutional
autoencoder, a denoising autoencoder, image retrieval by nearest codes, and morphing between two
faces. Each is one facespace call here, on the same data (LFW, 32x32 RGB, the central 90x90 crop)
or on the embedded faces that ship with scikit-image:

    .venv/bin/python examples/course.py --data embedded --epochs 2 --out outputs/course     # a minute
    .venv/bin/python examples/course.py --data ../shared/data/lfw/lfw-deepfunneled --epochs 25

Pictures land in --out: pca.png, conv.png, denoise.png (originals over reconstructions; noisy,
denoised), retrieval.png (each query, then its nearest faces) and morph.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import facespace as fs
from facespace.data.corruptions import parse_corruption
from facespace.data.splits import random_split
from facespace.grid import save_grid, save_png
from facespace.pipelines.generation import denoise
from facespace.pipelines.retrieval import montage


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="embedded", help="'embedded', an LFW folder, or any image folder")
    ap.add_argument("--code-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=25, help="for the conv and denoising autoencoders")
    ap.add_argument("--out", type=Path, default=Path("outputs/course"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    # the data: 32x32 RGB faces in [0, 1], a random 10 % held out
    faces = fs.load_faces(args.data, size=32, progress=False)
    if "is_face" in (faces.labels or {}):  # the embedded set also holds 100 non-faces
        faces = faces.subset(np.asarray(faces.labels["is_face"], bool))
    train, test = random_split(faces, test=0.1, seed=42)
    shown = test.images[:8]
    results = {}

    # 1. the PCA autoencoder: the best linear encoder/decoder, in closed form
    pca = fs.train("pca", train, code_size=args.code_size)
    save_grid(np.concatenate([shown, fs.reconstruct(pca, shown)]), args.out / "pca.png", ncols=8, scale=3)
    results["pca_test_mse"] = float(np.mean((fs.reconstruct(pca, test.images) - test.images) ** 2))

    # 2. the deep convolutional autoencoder, the course's network ("seed"), trained with Adam
    conv = fs.train("conv", train, code_size=args.code_size, epochs=args.epochs, arch="seed", progress=False)
    save_grid(np.concatenate([shown, fs.reconstruct(conv, shown)]), args.out / "conv.png", ncols=8, scale=3)
    results["conv_test_mse"] = float(np.mean((fs.reconstruct(conv, test.images) - test.images) ** 2))

    # 3. the denoising autoencoder: trained to undo Gaussian noise of sigma 0.1
    dn = fs.train("denoise", train, code_size=512, epochs=args.epochs, noise="gaussian:0.1", progress=False)
    noisy = parse_corruption("gaussian:0.1").apply(shown, seed=0)
    save_grid(np.concatenate([shown, noisy, denoise(dn, noisy)]), args.out / "denoise.png", ncols=8, scale=3)

    # 4. image retrieval: the nearest codes of a few held-out faces, among the training faces
    index = fs.build_index(conv, train, metric="l2")
    hits = fs.search(index, shown[:4], k=5, model=conv)
    tiles = [np.stack([train.images[h["id"]] for h in row]) for row in hits]
    save_png(montage(shown[:4], tiles, hits, scale=3), args.out / "retrieval.png")

    # 5. morphing: a straight line between two faces' codes, decoded
    save_grid(np.clip(fs.morph(conv, shown[0], shown[1], steps=7), 0, 1), args.out / "morph.png", ncols=7, scale=3)

    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
