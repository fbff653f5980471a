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
`checksums` is a CRC-32 per tensor and `header_crc` one of the header's own fields (dim, metric,
backend, settings, model, count, rows), so a damaged file is refused rather than searched.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from facespace.errors import IndexingError
from facespace.files import atomic_write, check_output
from facespace.version import __version__

FORMAT = "facespace-index"
FORMAT_VERSION = 1


HEADER_FIELDS = ("dim", "metric", "backend", "settings", "model", "count", "rows")


def _header_crc(header: dict[str, Any]) -> int:
    """CRC-32 of the fields that say how to read and search the tensors."""
    fields = {k: header.get(k) for k in HEADER_FIELDS}
    return zlib.crc32(json.dumps(fields, sort_keys=True, default=str).encode("utf-8"))


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8))


def write_index_file(path: str | os.PathLike, fields: dict[str, Any], tensors: dict[str, np.ndarray]) -> Path:
    """Write an index file atomically: the old file stays whole until the new one is complete.

    Args:
        path: the file.
        fields: the header's own fields (dim, metric, backend, settings, model, count, rows); the
            format, versions and checksums are added here.
        tensors: name -> numpy array (see the module docstring).
    """
    from safetensors.numpy import save

    check_output(path, "index")
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "facespace_version": __version__, **fields,
              "checksums": {k: _crc(v) for k, v in tensors.items()}, "header_crc": _header_crc(fields)}
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
    if "header_crc" in header and header["header_crc"] != _header_crc(header):  # files before it have none
        raise IndexingError(f"{path} is corrupt (its header's metric, count or settings do not match their checksum); "
                            "rebuild it with `facespace index build`")
    sums = header.get("checksums", {})
    if set(sums) != set(tensors) or any(_crc(tensors[k]) != sums[k] for k in tensors):
        raise IndexingError(f"{path} is corrupt (its contents do not match their checksums); rebuild it")
    return header, tensors
