"""Reading the three export formats (`facespace.pipelines.export.formats` says what each holds).

`load_codes` checks the path and dispatches by suffix; the readers check the sidecar, format
version, shape and checksum, and say what to do when a file does not match.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from facespace.pipelines.export.formats import (
    MANIFEST, BOX_COLUMNS, FORMAT, FORMAT_VERSION, RECORD_SUFFIX, ExportedCodes, ExportError, codes_format, crc,
    pyarrow_modules, sidecar_path,
)


def _read_sidecar(path: Path, *, required: bool) -> dict[str, Any] | None:
    side = sidecar_path(path)
    if not side.is_file() and required:
        raise ExportError(f"{path}: its sidecar {side.name} (paths, names, model) is missing; keep the two files "
                          "together, or export again with `facespace encode`")
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExportError(f"{side}: not a facespace codes sidecar (unreadable JSON: {e}); export again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ExportError(f"{side}: not a facespace codes sidecar (no format {FORMAT!r}); export again")
    _check_version(meta, side)
    return meta


def _check_version(meta: dict, where: Any) -> None:
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ExportError(f"{where}: codes format version {version!r}, this facespace reads up to {FORMAT_VERSION}; "
                          "upgrade facespace")


def _check_against(meta: dict, z: np.ndarray, path: Path) -> None:
    if meta.get("count") != len(z) or meta.get("dim") != z.shape[1]:
        raise ExportError(f"{path}: holds {z.shape[0]} x {z.shape[1]} codes but its sidecar describes "
                          f"{meta.get('count')} x {meta.get('dim')}; the files are from different exports, export again")
    if "crc32" in meta and meta["crc32"] != crc(z):
        raise ExportError(f"{path}: its codes do not match the checksum in its sidecar (changed or damaged); export again")


def load_npy(path: Path) -> ExportedCodes:
    try:
        z = np.load(path, allow_pickle=False, mmap_mode=None)
    except (ValueError, OSError, EOFError) as e:
        raise ExportError(f"{path}: not a readable .npy file (truncated or another format: {e}); export again") from None
    if not isinstance(z, np.ndarray) or z.ndim != 2 or z.dtype != np.float32:
        raise ExportError(f"{path}: expected (n, d) float32 codes; got {getattr(z, 'shape', '?')} {getattr(z, 'dtype', '')}")
    meta = _read_sidecar(path, required=True)
    _check_against(meta, z, path)
    n = len(z)
    try:
        src, nm = [str(s) for s in meta["sources"]], [None if v is None else str(v) for v in meta["names"]]
        faces = [int(v) for v in meta.get("faces") or [0] * n]
        boxes = [None if b is None else tuple(int(v) for v in b) for b in meta.get("boxes") or [None] * n]
    except (KeyError, TypeError, ValueError):
        raise ExportError(f"{sidecar_path(path)}: sources/names/boxes are missing or malformed; export again") from None
    if not len(src) == len(nm) == len(faces) == len(boxes) == n:
        raise ExportError(f"{sidecar_path(path)}: lists of paths/names do not have {n} entries; export again")
    return ExportedCodes(z, src, nm, meta.get("model"), boxes, faces)


def load_csv(path: Path) -> ExportedCodes:
    # no newline translation: paths may hold "\r"; bytes that are not UTF-8 are a file name's own (the writer)
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    z_cols = [j for j, h in enumerate(header or []) if h[:1] == "z" and h[1:].isdigit()]
    if not header or header[:2] != ["path", "name"] or not z_cols:
        raise ExportError(f"{path}: not a codes CSV; expected a header path,name,z0,z1,... (got {(header or [])[:4]})")
    if [header[j] for j in z_cols] != [f"z{i}" for i in range(len(z_cols))]:
        raise ExportError(f"{path}: code columns must be z0, z1, ... in order")
    detected = all(c in header for c in BOX_COLUMNS)
    at = {c: header.index(c) for c in BOX_COLUMNS} if detected else {}
    src, nm, boxes, faces, rows = [], [], [], [], []
    for line, cells in enumerate(reader, start=2):
        if not cells:
            continue
        if len(cells) != len(header):
            raise ExportError(f"{path}: line {line} has {len(cells)} fields, the header {len(header)} (truncated file?)")
        src.append(cells[0])
        nm.append(cells[1] or None)
        try:
            rows.append([float(cells[j]) for j in z_cols])
            box = tuple(int(cells[at[c]]) for c in BOX_COLUMNS[1:]) if detected and cells[at["x"]] else None
            boxes.append(box)
            faces.append(int(cells[at["face"]]) if box else 0)
        except ValueError:
            raise ExportError(f"{path}: line {line} has a value that is not a number") from None
    z = np.asarray(rows, np.float32).reshape(len(rows), len(z_cols))
    if not np.isfinite(z).all():
        raise ExportError(f"{path}: codes contain NaN or infinite values; drop those rows")
    meta = _read_sidecar(path, required=False)
    if meta is not None:
        _check_against(meta, z, path)
    return ExportedCodes(z, src, nm, None if meta is None else meta.get("model"), boxes, faces)


def load_parquet(path: Path) -> ExportedCodes:
    pa, pq = pyarrow_modules()
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise ExportError(f"{path}: not a readable Parquet file (truncated or another format: {e}); export again") from None
    raw = (table.schema.metadata or {}).get(b"facespace")
    if raw is None or not {"path", "name", "code"} <= set(table.column_names):
        raise ExportError(f"{path}: not a facespace codes file (needs columns path, name, code and facespace metadata)")
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ExportError(f"{path}: its facespace metadata is unreadable; export again") from None
    _check_version(meta, path)
    code = table.column("code").combine_chunks()
    if not pa.types.is_fixed_size_list(code.type):
        raise ExportError(f"{path}: column 'code' must be a fixed-size list of float32")
    d = code.type.list_size
    z = np.asarray(code.flatten().to_numpy(zero_copy_only=False), np.float32).reshape(len(table), d)
    _check_against(meta, z, path)
    src, nm = [str(s) for s in _texts(table.column("path"))], _texts(table.column("name"))
    faces = table.column("face").to_pylist() if "face" in table.column_names else None
    boxes = table.column("box").to_pylist() if "box" in table.column_names else None
    return ExportedCodes(z, src, nm, meta.get("model"),
                         [None if b is None else tuple(b) for b in boxes] if boxes else [], faces or [])


def is_codes_dir(path: str | os.PathLike) -> bool:
    """True for a folder that holds a shard manifest."""
    return (Path(path) / MANIFEST).is_file()


def shard_records(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of the shards written in a folder (`shard-KKKKK.done.json`, one per shard), in shard
    order: each `{"job", "shard" (tag), "file", "rows", "crc", "files", "failed" {path: reason}}`."""
    records = []
    for path in sorted(Path(folder).glob(f"shard-*{RECORD_SUFFIX}")):
        try:
            records.append(json.loads(path.read_text("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:  # written atomically: only a hand edit does this
            raise ExportError(f"{path}: damaged shard record ({e}); delete it and its shard, and re-run the "
                              "encode command") from None
    return records


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """A shard folder's manifest as the folder stands: `manifest.json`, completed with the records of
    the shards written since it was (a job whose driver was killed before it wrote the manifest at its
    end). A manifest that lists every shard is read alone, as are manifests of folders without records.

    Raises:
        ExportError: no manifest or a damaged one.
    """
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise ExportError(f"{folder}: no {MANIFEST}; it is not a shard folder written by `facespace encode "
                          "--out FOLDER/`") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExportError(f"{folder / MANIFEST}: damaged ({e}); re-run the encode command into a new folder") from None
    if len(manifest.get("shards", {})) >= int(manifest.get("n_shards", 0)):
        return manifest
    return merge_records(manifest, shard_records(folder))


def merge_records(manifest: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """`manifest` with the shards and failed files of its job's `records` added, in shard order."""
    shards, failed = dict(manifest.get("shards", {})), dict(manifest.get("failed", {}))
    for r in records:
        if r.get("job") == manifest.get("job"):
            shards[r["shard"]] = {"file": r["file"], "rows": r["rows"], "crc": r["crc"], "files": r["files"]}
            failed.update(r.get("failed", {}))
    return {**manifest, "shards": dict(sorted(shards.items())), "failed": failed}


def finished_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """`read_manifest` of a finished job; an unfinished one is refused saying how to finish it."""
    manifest = read_manifest(folder)
    missing = [f"{k:05d}" for k in range(int(manifest.get("n_shards", 0))) if f"{k:05d}" not in manifest["shards"]]
    if missing:
        raise ExportError(f"{folder}: {len(missing)} of {manifest['n_shards']} shards are not done (e.g. shard "
                          f"{missing[0]}); re-run the same encode command to finish them")
    return manifest


def load_codes_dir(path: str | os.PathLike) -> ExportedCodes:
    """A shard folder read as one set, shards in order.

    Raises:
        ExportError: no manifest, a shard missing or truncated, shards of different models, or a job
            not finished (re-run the same encode command to finish it).
    """
    folder = Path(path)
    manifest = finished_manifest(folder)
    parts = []
    for tag in sorted(manifest["shards"]):
        entry = manifest["shards"][tag]
        part = load_npy(folder / entry["file"])
        if crc(part.codes) != entry["crc"] or len(part) != entry["rows"]:
            raise ExportError(f"{folder / entry['file']}: does not match the manifest (damaged or replaced); delete it "
                              "and its entry, or the folder, and re-run the encode command")
        if (part.model or {}).get("weights_hash") != (manifest.get("model") or {}).get("weights_hash"):
            raise ExportError(f"{folder / entry['file']}: made by another model than the folder's; codes of two "
                              "models cannot be one set")
        parts.append(part)
    z = np.concatenate([p.codes for p in parts]) if parts else np.zeros((0, 0), np.float32)
    return ExportedCodes(z, sum((p.sources for p in parts), []), sum((p.names for p in parts), []),
                         manifest.get("model"), sum((p.boxes for p in parts), []), sum((p.faces for p in parts), []))


def load_codes(path: str | os.PathLike) -> ExportedCodes:
    """Read codes written by `save_codes` (or a CSV `path,name,z0,...` from another tool).

    Args:
        path: a `.npy` (with its `.npy.json` sidecar), `.csv` or `.parquet` file, or a shard folder
            written by `facespace encode --out FOLDER/` (read as one set).

    Returns:
        An `ExportedCodes`: `codes (n, d)` float32, `sources`, `names`, `model`, `boxes`, `faces`.

    Raises:
        ExportError: a missing, truncated or foreign file, a sidecar that does not match its
            data, an unknown suffix or a newer format version.
    """
    path = Path(path)
    if path.is_dir():
        return load_codes_dir(path)
    suffix = codes_format(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such codes file; write one with `facespace encode ... --out {path.name}`")
    if suffix == ".npy":
        return load_npy(path)
    if suffix == ".csv":
        return load_csv(path)
    return load_parquet(path)


def _texts(column) -> list:
    """A parquet text column as str: binary columns hold names that are not UTF-8 (see the writer)."""
    values = column.to_pylist()
    return [v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v for v in values]
