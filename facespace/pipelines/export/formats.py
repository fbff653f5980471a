"""Embeddings out and in: codes with their paths and names in `.npy`, `.csv` or `.parquet` files.

Three formats, one meaning (row i is one face: its code, the file it came from, whose face it is,
and, when faces were detected in whole photos, which face and its box):

- `.npy`: the `(n, d)` float32 codes, plus a sidecar `<file>.npy.json` holding `format`,
  `format_version`, `dim`, `count`, `crc32` (of the codes), `sources`, `names`, `faces`, `boxes`
  and `model` (the record of `facespace.index.binding.model_record`). The sidecar is required: a
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
    >>> from facespace.pipelines.export.read import load_codes
    >>> from facespace.pipelines.export.write import save_codes
    >>> save_codes(np.eye(2, dtype=np.float32), "codes.npy", sources=["a.jpg", "b.jpg"],
    ...            names=["ann", None])                                    # doctest: +SKIP
    >>> load_codes("codes.npy").names                                        # doctest: +SKIP
    ['ann', None]
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facespace.errors import FacespaceError
from facespace.index.binding import model_record

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
        model: the model record (`facespace.index.binding.model_record`) or None when unknown.
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


def crc(codes: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(codes, np.float32).reshape(-1).view(np.uint8))


def export_model_record(model: Any) -> dict[str, Any] | None:
    """What an export stores about its model (`facespace.index.binding.model_record`, with an absolute path)."""
    if model is None:
        return None
    if isinstance(model, dict):
        rec = dict(model)
    else:
        rec = model_record(model)
    if rec.get("path") and not os.path.isabs(rec["path"]):  # the export may be read from another folder
        rec["path"] = os.path.abspath(rec["path"])
    return rec


MANIFEST = "manifest.json"  # the index of a shard folder (`facespace.pipelines.export.shards`)
# beside each shard file of a folder, written once the shard is: its manifest entry and failed files
RECORD_SUFFIX = ".done.json"


def record_path(shard: str | os.PathLike) -> Path:
    """The record beside a shard file: `shard-00003.npy` -> `shard-00003.done.json`."""
    shard = Path(shard)
    return shard.with_name(shard.stem + RECORD_SUFFIX)


def is_codes_file(path: str | os.PathLike) -> bool:
    """True for a path whose suffix is one of the export formats (`.npy`, `.csv`, `.parquet`), or a
    shard folder (it holds a `manifest.json`)."""
    if (Path(path) / MANIFEST).is_file():
        return True
    return Path(path).suffix.lower() in SUFFIXES


def pyarrow_modules():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise ExportError("parquet needs pyarrow (pip install pyarrow); or export to .npy or .csv") from None
    return pa, pq
