"""The sketch pipeline: train a sequence autoencoder on stroke drawings, reconstruct them, and
cluster their codes.

Example:
    >>> from facespace.data.sketch_synth import make_face_sketches
    >>> faces = make_face_sketches(200)
    >>> model = train_sketches(faces, epochs=1, progress=False)               # doctest: +SKIP
    >>> labels = cluster_sketches(model.encode(faces), method="hdbscan")      # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facespace.data.sketch_formats import Sketches
from facespace.data.strokes import check_stroke3, collate_strokes, limit_length
from facespace.errors import FacespaceError

CLUSTER_METHODS = ("dbscan", "hdbscan")


def _strokes(sketches: Sketches | Sequence[np.ndarray], what: str) -> list[np.ndarray]:
    strokes = list(getattr(sketches, "strokes", sketches))
    if not strokes:
        raise FacespaceError(f"{what} holds no sketches; check the file and the split")
    return [check_stroke3(s, what=f"{what} sketch {i}") for i, s in enumerate(strokes)]


def train_sketches(
    sketches: Sketches | Sequence[np.ndarray],
    *,
    val: Sketches | Sequence[np.ndarray] | None = None,
    out: str | os.PathLike | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 2e-3,
    schedule: str = "onecycle",
    seed: int = 0,
    threads: int | None = None,
    progress: bool = True,
    **model_options: Any,
):
    """Train a `SketchAE` on stroke-3 sketches with `facespace.training.loop.fit`.

    Args:
        sketches: training sketches (`Sketches` or a list of `(n, 3)` arrays, any units).
        val: validation sketches; default: none (the training loss picks the best epoch).
        out: run folder for checkpoints, metrics.csv, loss.png and samples.png (originals over
            reconstructions); None writes nothing.
        epochs, batch_size, lr, schedule, seed, threads: see `facespace.training.loop.TrainConfig`.
        progress: progress bar and epoch lines on stderr.
        **model_options: `SketchAEConfig` fields (code_size, cell, output, fit_box, max_len, ...).

    Returns:
        The trained model, in eval mode, with the best epoch's weights when `out` was given.
        Sketches longer than `max_len` are left out of training.
    """
    import torch

    from facespace.training.loop import TrainConfig, fit
    from facespace.models.sketch_ae import SketchAE, SketchAEConfig

    known = {f.name for f in fields(SketchAEConfig)}
    unknown = sorted(set(model_options) - known)
    if unknown:
        raise FacespaceError(f"unknown sketch model option(s) {', '.join(unknown)}; expected: {', '.join(sorted(known))}")
    config = SketchAEConfig(**model_options)
    train_strokes, _ = limit_length(_strokes(sketches, "training data"), config.max_len)
    if not train_strokes:
        raise FacespaceError(f"every training sketch is longer than max_len={config.max_len}; raise max_len")
    torch.manual_seed(seed)
    model = SketchAE(config).fit_scale(train_strokes)
    val_strokes = None if val is None else limit_length(_strokes(val, "validation data"), config.max_len)[0]
    val_data = model.prepare(val_strokes) if val_strokes else None
    sample_fn = None
    if out is not None:
        shown = (val_strokes or train_strokes)[:8]

        def sample_fn(network):  # originals over free-running reconstructions, for samples.png
            from facespace.data.sketch_draw import render_sketches

            recon = network.reconstruct(shown)
            return np.stack([render_sketches(shown, size=48), render_sketches(recon, size=48)])

    train_config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, seed=seed, threads=threads)
    result = fit(model, model.prepare(train_strokes), val_data, train_config, out_dir=out,
                 collate_fn=collate_strokes, progress=progress, sample_fn=sample_fn)
    if result.best_path is not None and Path(result.best_path).exists():
        from facespace.models.registry import load_model

        model = load_model(result.best_path, kind="sketch")
    model.eval()
    return model


def cluster_sketches(
    codes: np.ndarray, method: str = "hdbscan", *, eps: float | None = None, min_samples: int = 5,
    min_cluster_size: int = 10, metric: str = "l2",
) -> np.ndarray:
    """Cluster `(n, d)` sketch codes with DBSCAN or HDBSCAN (scikit-learn).

    The codes are standardised per dimension first, so no single dimension rules the distances.
    `eps` (DBSCAN) defaults to the knee of the k-distance curve (`facespace.people.clustering.estimate_eps`).

    Returns:
        `(n,)` int64 labels, -1 for noise, clusters numbered 0.. by decreasing size.
    """
    from facespace.people.clustering import cluster

    if method not in CLUSTER_METHODS:
        raise FacespaceError(f"unknown clustering method {method!r}; expected one of: {', '.join(CLUSTER_METHODS)}")
    z = np.asarray(codes, np.float64)
    if z.ndim != 2 or len(z) == 0:
        raise FacespaceError(f"codes must be a non-empty (n, d) array; got shape {z.shape}")
    z = (z - z.mean(0)) / np.maximum(z.std(0), 1e-8)
    return cluster(z, method, metric=metric, eps=eps, min_samples=min_samples, min_cluster_size=min_cluster_size,
                   eps_rule="knee")


def cluster_purity(labels_true: Any, labels_pred: Any) -> float:
    """Share of clustered (non-noise) sketches whose cluster's majority label is theirs. 0 when all are noise."""
    t = np.asarray(labels_true)
    p = np.asarray(labels_pred, np.int64)
    keep = p >= 0
    if not keep.any():
        return 0.0
    hits = sum(np.unique(t[keep][p[keep] == c], return_counts=True)[1].max() for c in np.unique(p[keep]))
    return float(hits / keep.sum())


def write_cluster_gallery(
    sketches: Sketches | Sequence[np.ndarray], labels: np.ndarray, gallery_dir: str | os.PathLike,
    *, max_per_cluster: int = 64, size: int = 64,
) -> list[Path]:
    """One grid PNG per cluster (`cluster_000.png`, ...; `noise.png` for -1) in `gallery_dir`.

    Returns:
        The paths written, clusters in label order, noise last.
    """
    from facespace.data.sketch_draw import save_sketch_grid

    strokes = list(getattr(sketches, "strokes", sketches))
    labels = np.asarray(labels, np.int64)
    if len(labels) != len(strokes):
        raise FacespaceError(f"{len(labels)} labels for {len(strokes)} sketches; they must match one to one")
    gallery = Path(gallery_dir)
    gallery.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in sorted(set(labels.tolist()), key=lambda c: (c < 0, c)):
        members = np.flatnonzero(labels == c)[:max_per_cluster]
        name = "noise.png" if c < 0 else f"cluster_{c:03d}.png"
        paths.append(save_sketch_grid([strokes[i] for i in members], gallery / name, size=size))
    return paths
