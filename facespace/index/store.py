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

Format version 2 adds an index too large for one file in memory (the ivfpq backend): the file
keeps the header, `alive` and `metadata`; the vectors, norms, ids and the backend's own structure
(faiss's inverted lists) are raw files in a parts folder beside it, `NAME.index.parts-TOKEN/`
(`data.f32`, `norms.f32`, `ids.i64`, `lists.faiss`), read memory-mapped. The header's `parts`
names the folder and each file's dtype, shape, size and CRC-32 (under `header_crc` too). Writing
is atomic: a new parts folder is written and synced first, then the file is renamed into place,
then the old parts folder is deleted; a crash at any point leaves the old index whole (and at most
an orphan parts folder, removed by the next save).
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facespace.errors import IndexingError
from facespace.files import atomic_write, check_output
from facespace.index.mapped import fsync_folder, map_file
from facespace.version import __version__

FORMAT = "facespace-index"
FORMAT_VERSION = 2  # 2: parts folder (write_index_parts); a file without parts is still written as 1
PARTS_FORMAT_VERSION = 2
CHUNK = 1 << 24  # bytes read or written at a time for a part


HEADER_FIELDS = ("dim", "metric", "backend", "settings", "model", "count", "rows")


def _header_crc(header: dict[str, Any]) -> int:
    """CRC-32 of the fields that say how to read and search the tensors."""
    fields = {k: header.get(k) for k in HEADER_FIELDS}
    if header.get("parts") is not None:  # files without parts keep the checksum they were written with
        fields["parts"] = header["parts"]
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
    version = PARTS_FORMAT_VERSION if fields.get("parts") is not None else 1
    header = {"format": FORMAT, "format_version": version, "facespace_version": __version__, **fields,
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


def _write_array(path: Path, array: np.ndarray) -> dict[str, Any]:
    """Write `array`'s bytes to `path` a chunk at a time (it may be a mapping larger than RAM)."""
    crc, rows = 0, max(1, CHUNK // max(1, array[:1].nbytes))
    with open(path, "wb") as f:
        for start in range(0, len(array), rows):
            chunk = np.ascontiguousarray(array[start : start + rows]).reshape(-1).view(np.uint8)
            crc = zlib.crc32(chunk, crc)
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    return {"dtype": str(array.dtype), "shape": list(array.shape), "bytes": int(array.nbytes), "crc": crc}


def _file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            crc = zlib.crc32(block, crc)
    return crc


def parts_folders(path: str | os.PathLike) -> list[Path]:
    """Every parts folder of the index file `path` (the current one and orphans of crashed saves)."""
    path = Path(path)
    return sorted(p for p in path.parent.glob(f"{path.name}.parts-*") if p.is_dir())


def write_index_parts(
    path: str | os.PathLike,
    fields: dict[str, Any],
    tensors: dict[str, np.ndarray],
    arrays: dict[str, np.ndarray],
    files: dict[str, Callable[[Path], None]],
) -> Path:
    """Write an index as a file plus a parts folder, atomically (see the module docstring).

    Args:
        path: the index file.
        fields: the header's own fields, as for `write_index_file`.
        tensors: small arrays kept in the file (`alive`, `metadata`).
        arrays: name -> `(rows, ...)` array (possibly memory-mapped), each written to `NAME.bin`
            in the parts folder.
        files: name -> a function writing that part to the path it is given (e.g. faiss's index).
    """
    import secrets

    check_output(path, "index")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = parts_folders(path)
    folder = path.parent / f"{path.name}.parts-{secrets.token_hex(6)}"
    folder.mkdir()
    try:
        manifest: dict[str, Any] = {"folder": folder.name, "arrays": {}, "files": {}}
        for name, array in arrays.items():
            manifest["arrays"][name] = _write_array(folder / f"{name}.bin", array)
        for name, write in files.items():
            target = folder / f"{name}.bin"
            write(target)
            with open(target, "rb+") as f:
                os.fsync(f.fileno())
            manifest["files"][name] = {"bytes": target.stat().st_size, "crc": _file_crc(target)}
        fsync_folder(folder)
        write_index_file(path, {**fields, "parts": manifest}, tensors)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    for stale in old:  # the new file no longer refers to them (mapped copies stay readable until unmapped)
        shutil.rmtree(stale, ignore_errors=True)
    return path


def read_parts(path: str | os.PathLike, header: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Path]]:
    """The parts of an index file: `(arrays, files)`, arrays memory-mapped read-only, all checked.

    Raises:
        IndexingError: the parts folder or one of its files is missing, cut short or changed.
    """
    path = Path(path)
    manifest = header["parts"]
    folder = path.parent / manifest["folder"]
    if not folder.is_dir():
        raise IndexingError(f"{path} keeps its vectors in the folder {folder.name} beside it, which is missing; "
                            "copy or move the index file together with that folder, or rebuild the index")
    arrays: dict[str, np.ndarray] = {}
    files: dict[str, Path] = {}
    for kind, entries in (("arrays", manifest["arrays"]), ("files", manifest["files"])):
        for name, entry in entries.items():
            part = folder / f"{name}.bin"
            size = part.stat().st_size if part.is_file() else None
            if size != entry["bytes"] or _file_crc(part) != entry["crc"]:
                what = "missing" if size is None else "cut short or changed" if size != entry["bytes"] else "corrupt"
                raise IndexingError(f"{path}: its part {folder.name}/{part.name} is {what} (it does not match its "
                                    "checksum); rebuild the index")
            if kind == "files":
                files[name] = part
            elif entry["bytes"] == 0:  # an empty file cannot be mapped
                arrays[name] = np.zeros(entry["shape"], entry["dtype"])
            else:
                arrays[name] = map_file(part, entry["dtype"], "r", tuple(entry["shape"]))
    return arrays, files


def index_bytes(path: str | os.PathLike) -> int:
    """Bytes on disk of the index file `path` and of its parts folder, if it has one."""
    path = Path(path)
    total = path.stat().st_size if path.is_file() else 0
    try:
        header, _ = read_header(path)
    except IndexingError:
        return total
    if header.get("parts"):
        folder = path.parent / header["parts"]["folder"]
        total += sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    return total
