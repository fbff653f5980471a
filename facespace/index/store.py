"""The on-disk format of an index: one safetensors file, written atomically.

Format (version 1). Tensors:
    data      (rows, dim) float32  the vectors as the backend compares them (unit length for cosine)
    norms     (rows,) float32      raw norms (cosine only), so `reconstruct` gives the raw vectors
    ids       (rows,) int64
    alive     (rows,) uint8        0 for removed rows still inside a graph
    metadata  (bytes,) uint8       UTF-8 JSON list, one dict per row (absent when none was given)
    backend.* the backend's own structure (the HNSW graph), when it cannot be rebuilt cheaply
The header metadata key "facespace" holds JSON `{format, format_version, facespace_version, dim,
metric, backend, settings, model, count, rows, checksums}`: `settings` is every backend setting,
search-time ones included; `model` records the model the vectors came from (or null);
`checksums` is a CRC-32 per tensor, so a damaged file is refused rather than searched.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from facespace.files import atomic_write
from facespace.index.index import Index, IndexingError

FORMAT = "facespace-index"
FORMAT_VERSION = 1


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def save_index(index: Index, path: str | os.PathLike) -> Path:
    """Write `index` to `path` atomically: the old file stays whole until the new one is complete."""
    from facespace import __version__
    from safetensors.numpy import save

    state = {f"backend.{k}": v for k, v in index._impl.state().items()}
    rows = np.arange(index._rows)
    if not state:  # nothing refers to row numbers: drop removed rows
        rows = rows[index._alive[: index._rows]]
    tensors: dict[str, np.ndarray] = {
        "data": index._data[rows],
        "ids": index._ids[rows],
        "alive": index._alive[rows].astype(np.uint8),
    }
    if index.metric == "cosine":
        tensors["norms"] = index._norms[rows]
    if index._meta is not None:
        meta = [index._meta[r] for r in rows]
        try:
            text = json.dumps(meta)
        except (TypeError, ValueError) as e:
            raise IndexingError(f"cannot save the index: metadata must be JSON-serialisable ({e})") from None
        tensors["metadata"] = np.frombuffer(text.encode("utf-8"), np.uint8).copy()
    tensors.update(state)
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "facespace_version": __version__,
        "dim": index.dim,
        "metric": index.metric,
        "backend": index.backend,
        "settings": index.settings,
        "model": index.model,
        "count": len(index),
        "rows": len(rows),
        "checksums": {k: _crc(v) for k, v in tensors.items()},
    }
    blob = save(tensors, metadata={"facespace": json.dumps(header)})
    path = Path(path)
    with atomic_write(path) as f:
        f.write(blob)
    return path


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return `(header, tensors)` of an index file, or raise IndexingError saying what is wrong."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise IndexingError(f"index file {path} does not exist; build one with `facespace index build`")
    if path.is_dir():
        raise IndexingError(f"{path} is a folder, not an index file; give the NAME.index file")
    try:
        with safe_open(str(path), framework="numpy") as f:
            raw = (f.metadata() or {}).get("facespace")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for truncated or foreign files
        raise IndexingError(
            f"{path} is not a readable facespace index (truncated or another format: {e}); "
            "rebuild it with `facespace index build`"
        ) from None
    if raw is None:
        raise IndexingError(f"{path} is a safetensors file but not a facespace index (a model checkpoint?)")
    try:
        header = json.loads(raw)
    except json.JSONDecodeError:
        raise IndexingError(f"{path} has a damaged index header; rebuild it with `facespace index build`") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise IndexingError(f"{path} is not a facespace index (format {found!r}); give a file written by `index build`")
    if int(header.get("format_version", 0)) > FORMAT_VERSION:
        raise IndexingError(
            f"{path} has index format version {header['format_version']}, newer than this facespace reads "
            f"({FORMAT_VERSION}); upgrade facespace"
        )
    sums = header.get("checksums", {})
    if set(sums) != set(tensors) or any(_crc(tensors[k]) != sums[k] for k in tensors):
        raise IndexingError(f"{path} is corrupt (its contents do not match their checksums); rebuild it")
    return header, tensors


def load_index(path: str | os.PathLike) -> Index:
    """Rebuild the `Index` saved at `path`."""
    header, t = read_header(path)
    try:
        index = Index(int(header["dim"]), header["metric"], header["backend"], **header["settings"])
        data, ids, alive = t["data"], t["ids"], t["alive"].astype(bool)
        rows = int(header["rows"])
        if data.shape != (rows, index.dim) or ids.shape != (rows,) or alive.shape != (rows,):
            raise ValueError("tensor shapes do not match the header")
        index._data, index._ids, index._alive = data.astype(np.float32, copy=True), ids.copy(), alive.copy()
        if index.metric == "cosine":
            index._norms = t["norms"].astype(np.float32, copy=True)
        if "metadata" in t:
            index._meta = json.loads(t["metadata"].tobytes().decode("utf-8"))
            if len(index._meta) != rows:
                raise ValueError("metadata length does not match the rows")
        index._rows, index._count = rows, int(alive.sum())
        index.model = header.get("model")
        state = {k[len("backend.") :]: v for k, v in t.items() if k.startswith("backend.")}
        index._impl.restore(state, index._data, index._alive)
    except IndexingError:
        raise
    except Exception as e:
        raise IndexingError(f"{path} is an inconsistent facespace index ({e}); rebuild it") from None
    return index
