"""Build an index of a model's codes of a face set, and check that a model matches an index.

An index built with a model records which one (`Index.model`): the hash of its checkpoint file
(`facespace.checkpoint.model_hash`) and a hash of its weights, so a model kept in memory and the
same model saved and loaded again are both recognised, and any other model is refused.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from facespace.checkpoint import model_hash, weights_hash
from facespace.index.index import Index, IndexingError

Progress = Callable[[int, int], None]  # (done, total)


def model_record(model: Any) -> dict[str, Any]:
    """What an index stores about the model its vectors came from."""
    info = getattr(model, "checkpoint_info", {}) or {}
    return {
        "hash": model_hash(model),
        "weights_hash": weights_hash(model),
        "kind": getattr(model, "kind", type(model).__name__),
        "path": os.path.abspath(info["path"]) if info.get("path") else None,  # searchable from any folder
        "image_shape": list(model.image_shape),
        "code_size": int(model.code_size),
    }


def check_model(index: Index, model: Any) -> None:
    """Raise IndexingError unless `model` is the model `index` was built with."""
    rec = index.model
    if rec is None:
        raise IndexingError(
            "this index was built from plain vectors, not with a model, so it cannot check which model "
            "made them; search it with codes (Index.search) or rebuild it with `facespace index build`"
        )
    if int(model.code_size) != index.dim:
        raise IndexingError(
            f"the model makes codes of size {model.code_size} but the index holds codes of size {index.dim}; "
            f"use the model the index was built with ({rec.get('path') or rec.get('kind')})"
        )
    found = model_hash(model)
    if rec.get("hash") and found == rec["hash"]:
        return
    if rec.get("weights_hash") and weights_hash(model) == rec["weights_hash"]:
        return
    raise IndexingError(
        f"this index was built with another model ({rec.get('kind')} {rec.get('hash') or rec.get('weights_hash')}"
        f"{', ' + rec['path'] if rec.get('path') else ''}), not this one ({getattr(model, 'kind', '?')} "
        f"{found or weights_hash(model)}); search with that model or rebuild the index with this one"
    )


def resolve_model(model: Any) -> Any:
    """A model object from a model or a checkpoint path."""
    if isinstance(model, (str, os.PathLike)):
        from facespace.checkpoint import load_model

        return load_model(model)
    return model


def index_model(index: Index) -> Any:
    """Load the model recorded in `index` from its checkpoint path, or say why that is impossible."""
    rec = index.model
    if rec is None or not rec.get("path"):
        raise IndexingError("this index records no model file; give the model explicitly (--model PATH)")
    if not os.path.exists(rec["path"]):
        raise IndexingError(f"the index's model file {rec['path']} is gone; give the model explicitly (--model PATH)")
    model = resolve_model(rec["path"])
    check_model(index, model)
    return model


def encode_faces(
    model: Any, source: Any, *, batch_size: int = 256, crop: Any = "recorded", progress: Progress | None = None
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Codes `(n, d)` float32 and metadata dicts (path, name) of every face in `source`.

    `source` is a FaceSet or anything `facespace.data.load_faces` reads (a folder, an archive,
    "embedded"); images are loaded at the model's size and channels, through the data cache.
    """
    from facespace.pipelines.codes import encode

    if hasattr(source, "images") and hasattr(source, "paths"):
        faces = source
    else:
        try:
            from facespace.data import load_faces
        except ImportError:  # pragma: no cover - the data area provides it
            raise IndexingError("facespace.data.load_faces is not available in this installation") from None
        from facespace.data.crops import resolve_crop

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
    model: Any,
    source: Any,
    *,
    metric: str = "cosine",
    backend: str = "exact",
    batch_size: int = 256,
    crop: Any = "recorded",
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
