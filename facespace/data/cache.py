"""The decoded-faces cache: one `.npy` of images (memory-mapped on reuse) and one `.json` beside it.

An entry's name is `<what>-<content>`: `what` hashes the source and every preprocessing parameter,
`content` hashes the source's file list with sizes and mtimes (or the archive's size and mtime).
Any change in either gives a new entry, and writing it removes the stale ones of the same `what`.
Both files are written atomically, the `.json` last, so an entry is complete or absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from facespace.files import atomic_write, write_text_atomic

# Bump when decoding or preprocessing changes, so old entries are not reused.
CACHE_VERSION = 1


def cache_dir() -> Path:
    """Where facespace caches things: `$FACESPACE_CACHE`, else `~/.cache/facespace`."""
    return Path(os.environ.get("FACESPACE_CACHE") or Path.home() / ".cache" / "facespace").expanduser()


def entry_path(what: dict[str, Any], content: Iterable[str]) -> Path:
    """The cache entry (without suffix) for a source + parameters (`what`) and its content lines."""
    what_hash = hashlib.sha256(json.dumps({"v": CACHE_VERSION, **what}, sort_keys=True).encode()).hexdigest()[:16]
    content_hash = hashlib.sha256("\n".join(content).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return cache_dir() / "faces" / f"{what_hash}-{content_hash}"


def read_entry(base: Path) -> tuple[np.ndarray, dict[str, Any]] | None:
    """The cached images (memory-mapped, copy-on-write) and metadata, or None when absent or damaged."""
    meta_path, npy_path = base.with_suffix(".json"), base.with_suffix(".npy")
    if not meta_path.is_file() or not npy_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
        # "c": pages are read lazily and shared; writes stay private to this process
        images = np.asarray(np.load(npy_path, mmap_mode="c"))  # a plain ndarray view of the map
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    if meta.get("version") != CACHE_VERSION or list(images.shape) != meta.get("shape"):
        return None
    return images, meta


def write_entry(base: Path, images: np.ndarray, meta: dict[str, Any]) -> Path | None:
    """Store an entry atomically and drop stale entries of the same source and parameters.

    A cache that cannot be written (read-only disk, full disk) only warns: the load still succeeds.

    Returns:
        The `.npy` path, or None when it could not be written.
    """
    meta = {**meta, "version": CACHE_VERSION, "shape": list(images.shape)}
    try:
        with atomic_write(base.with_suffix(".npy")) as f:
            np.save(f, np.ascontiguousarray(images, dtype=np.float32))
        write_text_atomic(base.with_suffix(".json"), json.dumps(meta))
    except OSError as e:
        warnings.warn(f"could not write the face cache in {base.parent} ({e}); loading works, but the next "
                      f"load decodes again; set FACESPACE_CACHE to a writable folder", stacklevel=5)
        return None
    what = base.name.split("-")[0]
    for old in base.parent.glob(f"{what}-*"):
        if old.stem != base.name and old.suffix in (".npy", ".json"):
            try:
                old.unlink()
            except OSError:
                pass
    return base.with_suffix(".npy")


def encode_labels(labels: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per-image label arrays as JSON-ready `{name: {"dtype", "values"}}`."""
    return {k: {"dtype": str(v.dtype), "values": v.tolist()} for k, v in labels.items()}


def decode_labels(data: dict[str, Any]) -> dict[str, np.ndarray]:
    """The inverse of `encode_labels`."""
    return {k: np.asarray(v["values"], dtype=v["dtype"]) for k, v in data.items()}
