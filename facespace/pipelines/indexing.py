"""Build an index of a model's codes of a face set.

An index built with a model records which one (`facespace.index.binding.model_record`), so a
search or an `index add` with any other model is refused.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from facespace.data.crops import RECORDED, resolve_crop
from facespace.data.load import load_faces
from facespace.index.binding import model_record
from facespace.index.index import Index, IndexingError
from facespace.models.registry import resolve_model
from facespace.pipelines.codes import encode
from facespace.pipelines.encoding import encode_sources
from facespace.protocol import Encoder, is_aligning

Progress = Callable[[int, int], None]  # (done, total)


def encode_faces(
    model: Encoder, source: Any, *, batch_size: int = 256, crop: Any = RECORDED, progress: Progress | None = None
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Codes `(n, d)` float32 and metadata dicts (path, name) of every face in `source`.

    `source` is a FaceSet or anything `facespace.data.load_faces` reads (a folder, an archive,
    "embedded"); images are loaded at the model's size and channels, through the data cache.
    """
    if hasattr(source, "images") and hasattr(source, "paths"):
        faces = source
    elif is_aligning(model):  # a model that cuts its own faces from whole files (dlib)
        rows, _, _ = encode_sources(model, [str(source)], batch_size=batch_size, crop=crop, progress=progress)
        return rows.codes, [{"path": p, "name": n} for p, n in zip(rows.sources, rows.names)]
    else:
        size, _, channels = model.image_shape
        faces = load_faces(str(source), size=size, crop=resolve_crop(model, crop), grayscale=channels == 1, progress=progress is not None)
    n = len(faces)
    codes = np.zeros((n, model.code_size), np.float32)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        codes[start:stop] = encode(model, faces.images[start:stop], batch_size=batch_size)
        if progress is not None:
            progress(stop, n)
    names = faces.names if faces.names is not None else [None] * n
    meta = [{"path": str(p), "name": None if nm is None else str(nm)} for p, nm in zip(faces.paths, names)]
    return codes, meta


def build_index(
    model: Encoder | str,
    source: Any,
    *,
    metric: str = "cosine",
    backend: str = "exact",
    batch_size: int = 256,
    crop: Any = RECORDED,
    progress: Progress | None = None,
    **settings: Any,
) -> Index:
    """Encode every face of `source` with `model` and index the codes.

    Args:
        model: an `Encoder`, or the path of a checkpoint.
        source: a FaceSet, or a path / "embedded" as `facespace.data.load_faces` takes.
        metric: "cosine", "l2" or "ip" (see `Index`).
        backend: "exact", "lsh" or "hnsw".
        batch_size: images encoded at a time.
        crop: crop applied to image files; "recorded": the model's own (`facespace.data.crops`).
        progress: called with (done, total) after each encoded batch.
        **settings: backend settings.

    Returns:
        An `Index` whose metadata holds each image's path and name, recording the model.

    Example:
        >>> index = build_index("runs/pca/best.safetensors", "embedded")   # doctest: +SKIP
    """
    model = resolve_model(model)
    index = Index(int(model.code_size), metric=metric, backend=backend, **settings)
    codes, meta = encode_faces(model, source, batch_size=batch_size, crop=crop, progress=progress)
    if len(codes) == 0:
        raise IndexingError(f"no images found in {source!r}; give a folder or archive of images")
    index.add(codes, metadata=meta)
    index.model = model_record(model)
    return index
