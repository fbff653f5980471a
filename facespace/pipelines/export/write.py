"""Writing codes with their paths and names (the formats: `facespace.pipelines.export.formats`)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facespace.pipelines.export.formats import (
    BOX_COLUMNS, FORMAT, FORMAT_VERSION, ExportError, codes_format, crc, export_model_record, pyarrow_modules,
    sidecar_path,
)

def _check(codes: Any, sources: Any, names: Any, boxes: Any, faces: Any) -> tuple[np.ndarray, list, list, list, list]:
    z = np.asarray(codes)
    if z.ndim != 2 or z.shape[1] < 1 or not np.issubdtype(z.dtype, np.number) or np.iscomplexobj(z):
        raise ExportError(f"codes must be an (n, d) array of real numbers with d >= 1; got {z.shape} {z.dtype}")
    z = np.ascontiguousarray(z, np.float32)
    if not np.isfinite(z).all():
        raise ExportError("codes contain NaN or infinite values; drop those rows before exporting")
    n = len(z)
    src = [str(s) for s in sources]
    nm = [None] * n if names is None else [None if v is None or v == "" else str(v) for v in names]
    bx = [None] * n if boxes is None else [None if b is None else tuple(int(v) for v in b) for b in boxes]
    fc = [0] * n if faces is None else [int(v) for v in faces]
    for what, values in (("sources", src), ("names", nm), ("boxes", bx), ("faces", fc)):
        if len(values) != n:
            raise ExportError(f"{what} has {len(values)} entries for {n} codes; give one per code")
    if any(b is not None and len(b) != 4 for b in bx):
        raise ExportError("each of boxes must be (x, y, width, height) or None")
    return z, src, nm, bx, fc


def save_codes(
    codes: Any,
    path: str | os.PathLike,
    *,
    sources: Sequence[str],
    names: Sequence[str | None] | None,
    model: Any = None,
    boxes: Sequence[Sequence[int] | None] | None = None,
    faces: Sequence[int] | None = None,
) -> Path:
    """Write codes with their paths and names to `.npy` (+ `.npy.json`), `.csv` (+ `.csv.json`) or `.parquet`.

    Args:
        codes: `(n, d)` float array, finite (stored as float32).
        path: the file; its suffix picks the format.
        sources: `n` paths, one per code.
        names: `n` identities (None or "" where unknown: both read back as None), or None for all unknown.
        model: the model that made the codes (an Encoder), its record dict, or None.
        boxes: `n` boxes `(x, y, width, height)` (None per row without one), when faces were detected.
        faces: `n` face numbers within their photo (default 0).

    Returns:
        The path written.

    Raises:
        ExportError: an unknown suffix, codes that are not `(n, d)` finite numbers, lists of the
            wrong length.
    """
    path = Path(path)
    suffix = codes_format(path)
    z, src, nm, bx, fc = _check(codes, sources, names, boxes, faces)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "dim": int(z.shape[1]), "count": len(z),
              "crc32": crc(z), "model": export_model_record(model)}
    detected = any(b is not None for b in bx)
    if suffix == ".parquet":
        _write_parquet(path, z, src, nm, bx, fc, header, detected)
        return path
    side = dict(header)
    if suffix == ".npy":
        side.update(sources=src, names=nm, faces=fc, boxes=[None if b is None else list(b) for b in bx])
    from facespace.files import atomic_write, write_text_atomic

    # both files are made in memory first, so nothing (a file name that is not UTF-8 included) can fail
    # between them; ASCII JSON escapes such names and reads them back exactly
    side_text = json.dumps(side, ensure_ascii=True)
    data = None if suffix == ".npy" else _csv_text(z, src, nm, bx, fc, detected).encode("utf-8", "surrogateescape")
    # data file first, then the sidecar; a crash between the two leaves a pair whose crc32/count
    # disagree, which load_codes refuses instead of pairing the wrong rows and paths
    with atomic_write(path, "wb") as f:
        if data is None:
            np.save(f, z, allow_pickle=False)
        else:
            f.write(data)
    write_text_atomic(sidecar_path(path), side_text)
    return path


def _csv_text(z: np.ndarray, src: list, nm: list, bx: list, fc: list, detected: bool) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    extra = list(BOX_COLUMNS) if detected else []
    w.writerow(["path", "name", *extra, *(f"z{j}" for j in range(z.shape[1]))])
    fmt = "{:.9g}".format  # 9 significant digits: every float32 reads back exactly
    for s, n, b, k, row in zip(src, nm, bx, fc, z.tolist()):
        cells = [s, "" if n is None else n]
        if detected:
            cells += [k, *b] if b is not None else ["", "", "", "", ""]
        w.writerow(cells + [fmt(v) for v in row])
    return buf.getvalue()


def _text_column(pa, values: list):
    """Strings as UTF-8; a column holding a name that is not UTF-8 (a Latin-1 file name, kept as
    surrogates by Python) as the bytes the file system uses, which `load_codes` decodes back."""
    try:
        for v in values:
            if v is not None:
                v.encode("utf-8")
        return pa.array(values, pa.string())
    except UnicodeEncodeError:
        return pa.array([None if v is None else v.encode("utf-8", "surrogateescape") for v in values], pa.binary())


def _write_parquet(path: Path, z, src, nm, bx, fc, header: dict, detected: bool) -> None:
    pa, pq = pyarrow_modules()
    d = z.shape[1]
    cols = {
        "path": _text_column(pa, src),
        "name": _text_column(pa, nm),
        "code": pa.FixedSizeListArray.from_arrays(pa.array(z.reshape(-1), pa.float32()), d),
    }
    if detected:
        cols["face"] = pa.array(fc, pa.int32())
        flat = [v for b in bx for v in (b if b is not None else (0, 0, 0, 0))]
        mask = pa.array([b is None for b in bx])
        cols["box"] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.int32()), 4, mask=mask)
    table = pa.table(cols).replace_schema_metadata({"facespace": json.dumps(header, ensure_ascii=False)})
    from facespace.files import atomic_write

    with atomic_write(path, "wb") as f:
        pq.write_table(table, f)
