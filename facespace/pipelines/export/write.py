"""Embeddings out and in: codes with their paths and names in `.npy`, `.csv` or `.parquet` files.

Three formats, one meaning (row i is one face: its code, the file it came from, whose face it is,
and, when faces were detected in whole photos, which face and its box):

- `.npy`: the `(n, d)` float32 codes, plus a sidecar `<file>.npy.json` holding `format`,
  `format_version`, `dim`, `count`, `crc32` (of the codes), `sources`, `names`, `faces`, `boxes`
  and `model` (the record of `facespace.index.build.model_record`). The sidecar is required: a
  bare `.npy` says nothing of where its rows came from.
- `.csv`: header `path,name,z0,...,z{d-1}` (with `face,x,y,width,height` after `name` when faces
  were detected), one row per face, floats written with 9 significant digits so float32 codes
  read back bit-exact. No comment lines, so any CSV reader takes it; the model record goes to a
  sidecar `<file>.csv.json`, which is optional on reading (a CSV from another tool loads with
  `model=None`).
- `.parquet`: columns `path` (string), `name` (string, null when unknown), `code`
  (fixed-size list<float32>[d]), and `face` (int32) / `box` (fixed-size list<int32>[4]) when faces
  were detected; the model record and format version in the schema metadata key `facespace`.

Every file is written to a temporary name and renamed (`facespace.files`), so a failed export
leaves no half file behind.

Example:
    >>> import numpy as np
    >>> from facespace.pipelines.export.write import load_codes, save_codes
    >>> save_codes("codes.npy", np.eye(2, dtype=np.float32), sources=["a.jpg", "b.jpg"],
    ...            names=["ann", None])                                    # doctest: +SKIP
    >>> load_codes("codes.npy").names                                        # doctest: +SKIP
    ['ann', None]
"""

from __future__ import annotations

import csv
import io
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facespace.errors import FacespaceError

FORMAT = "facespace-codes"
FORMAT_VERSION = 1
SUFFIXES = (".npy", ".csv", ".parquet")
BOX_COLUMNS = ("face", "x", "y", "width", "height")

Box = tuple[int, int, int, int]


class ExportError(FacespaceError):
    """A codes file that cannot be written or read: unknown suffix, truncated, foreign, inconsistent."""


@dataclass(frozen=True)
class ExportedCodes:
    """Codes read back from an export, row i being one face.

    Attributes:
        codes: `(n, d)` float32.
        sources: `n` paths (the image file each face came from).
        names: `n` identities (str or None).
        model: the model record (`facespace.index.build.model_record`) or None when unknown.
        boxes: `n` boxes `(x, y, width, height)` in file pixels, or None per row (no detection).
        faces: `n` face numbers within their photo (0 without detection).

    Example:
        >>> e = ExportedCodes(np.zeros((1, 2), np.float32), ["a.jpg"], [None], None)
        >>> len(e), e.labels()
        (1, ['a.jpg'])
    """

    codes: np.ndarray
    sources: list[str]
    names: list[str | None]
    model: dict[str, Any] | None
    boxes: list[Box | None] = field(default_factory=list)
    faces: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:  # boxes and faces default to "no detection"
        object.__setattr__(self, "boxes", list(self.boxes) or [None] * len(self.codes))
        object.__setattr__(self, "faces", list(self.faces) or [0] * len(self.codes))

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def dim(self) -> int:
        return int(self.codes.shape[1])

    def labels(self) -> list[str]:
        """One readable name per row: the source path, with `#k` for face k when faces were detected."""
        return [s if b is None else f"{s}#{k}" for s, k, b in zip(self.sources, self.faces, self.boxes)]

    def metadata(self) -> list[dict[str, Any]]:
        """One metadata dict per row, as an index stores it: path, name (and face, box)."""
        return [{"path": s, "name": n, **({} if b is None else {"face": int(k), "box": [int(v) for v in b]})}
                for s, n, k, b in zip(self.sources, self.names, self.faces, self.boxes)]


def codes_format(path: str | os.PathLike) -> str:
    """The format a codes file's suffix names (".npy", ".csv" or ".parquet"); any other raises ExportError."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ExportError(
            f"{path}: unknown codes format {suffix or '(no suffix)'!r}; name the file with one of: {', '.join(SUFFIXES)}"
        )
    return suffix


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON file beside an `.npy` / `.csv` export: `codes.npy` -> `codes.npy.json`."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def _crc(codes: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(codes, np.float32).reshape(-1).view(np.uint8))


def export_model_record(model: Any) -> dict[str, Any] | None:
    """What an export stores about its model (`facespace.index.build.model_record`, with an absolute path)."""
    if model is None:
        return None
    if isinstance(model, dict):
        rec = dict(model)
    else:
        from facespace.index.build import model_record

        rec = model_record(model)
    if rec.get("path") and not os.path.isabs(rec["path"]):  # the export may be read from another folder
        rec["path"] = os.path.abspath(rec["path"])
    return rec


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
    path: str | os.PathLike,
    codes: Any,
    *,
    sources: Sequence[str],
    names: Sequence[str | None] | None,
    model: Any = None,
    boxes: Sequence[Sequence[int] | None] | None = None,
    faces: Sequence[int] | None = None,
) -> Path:
    """Write codes with their paths and names to `.npy` (+ `.npy.json`), `.csv` (+ `.csv.json`) or `.parquet`.

    Args:
        path: the file; its suffix picks the format.
        codes: `(n, d)` float array, finite (stored as float32).
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
              "crc32": _crc(z), "model": export_model_record(model)}
    detected = any(b is not None for b in bx)
    if suffix == ".parquet":
        _write_parquet(path, z, src, nm, bx, fc, header, detected)
        return path
    side = dict(header)
    if suffix == ".npy":
        side.update(sources=src, names=nm, faces=fc, boxes=[None if b is None else list(b) for b in bx])
    from facespace.files import atomic_write, write_text_atomic

    # data file first, then the sidecar; a crash between the two leaves a pair whose crc32/count
    # disagree, which load_codes refuses instead of pairing the wrong rows and paths
    with atomic_write(path, "wb") as f:
        if suffix == ".npy":
            np.save(f, z, allow_pickle=False)
        else:
            f.write(_csv_text(z, src, nm, bx, fc, detected).encode("utf-8"))
    write_text_atomic(sidecar_path(path), json.dumps(side, ensure_ascii=False))
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


def _write_parquet(path: Path, z, src, nm, bx, fc, header: dict, detected: bool) -> None:
    pa, pq = _pyarrow()
    d = z.shape[1]
    cols = {
        "path": pa.array(src, pa.string()),
        "name": pa.array(nm, pa.string()),
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


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise ExportError("parquet needs pyarrow (pip install pyarrow); or export to .npy or .csv") from None
    return pa, pq


# ---- reading


def load_codes(path: str | os.PathLike) -> ExportedCodes:
    """Read codes written by `save_codes` (or a CSV `path,name,z0,...` from another tool).

    Args:
        path: a `.npy` (with its `.npy.json` sidecar), `.csv` or `.parquet` file.

    Returns:
        An `ExportedCodes`: `codes (n, d)` float32, `sources`, `names`, `model`, `boxes`, `faces`.

    Raises:
        ExportError: a missing, truncated or foreign file, a sidecar that does not match its
            data, an unknown suffix or a newer format version.
    """
    path = Path(path)
    suffix = codes_format(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such codes file; write one with `facespace encode ... --out {path.name}`")
    from facespace.pipelines.export.read import load_csv, load_npy, load_parquet

    if suffix == ".npy":
        return load_npy(path)
    if suffix == ".csv":
        return load_csv(path)
    return load_parquet(path)


def is_codes_file(path: str | os.PathLike) -> bool:
    """True for a path whose suffix is one of the export formats (`.npy`, `.csv`, `.parquet`)."""
    return Path(path).suffix.lower() in SUFFIXES
