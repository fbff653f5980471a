"""Read the stroke-drawing files users download: QuickDraw `.ndjson` and `.bin`, Sketch-RNN `.npz`.

Every reader returns `Sketches`: a list of `(n, 3)` float32 stroke-3 arrays (see
`facespace.data.strokes`) with per-sketch labels.

* QuickDraw `.ndjson`, one JSON object a line with `word`, `countrycode`, `timestamp`,
  `recognized`, `key_id` and `drawing`: a list of strokes `[[xs], [ys]]` (the "simplified" files,
  integer coordinates in 0..255) or `[[xs], [ys], [ts]]` (the "raw" files, any coordinates; these
  are rescaled and simplified with Ramer–Douglas–Peucker on reading).
* QuickDraw `.bin`, the packed form of the simplified files (little-endian records of key_id,
  countrycode, recognized, timestamp and uint8 strokes).
* Sketch-RNN `.npz`, keys `train`, `valid`, `test`, each an object array of `(n, 3)` int16
  stroke-3 arrays. **These files are Python pickles**: reading one can run code hidden in it, so
  only read `.npz` files from a source you trust (Google's Sketch-RNN bucket, your own files).

Example:
    >>> sk = load_sketches("face.npz", split="test")           # doctest: +SKIP
    >>> len(sk), sk.strokes[0].shape                            # doctest: +SKIP
    (2500, (57, 3))
"""

from __future__ import annotations

import io
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facespace.data.strokes import check_stroke3, lines_to_stroke3, raw_to_stroke3
from facespace.errors import DataError
from facespace.files import write_bytes_atomic

SPLITS = ("train", "valid", "test")


@dataclass
class Sketches:
    """Stroke drawings and what is known about each.

    Attributes:
        strokes: list of `(n_i, 3)` float32 stroke-3 arrays.
        labels: name -> `(len,)` array, one value per sketch (e.g. "mouth" kinds as ints, "word").
        label_names: name -> the kind names that an int label indexes.
        source: where the sketches came from.
        skipped: lines or records that were malformed and left out (0 under `strict`).
    """

    strokes: list[np.ndarray]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    label_names: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.strokes)

    def subset(self, index: Sequence[int] | np.ndarray) -> "Sketches":
        """The sketches at `index` (ints), labels kept in step."""
        idx = np.asarray(index, dtype=np.int64)
        return Sketches(
            [self.strokes[i] for i in idx],
            {k: np.asarray(v)[idx] for k, v in self.labels.items()},
            dict(self.label_names),
            self.source,
            self.skipped,
        )


def _bad(path: Path, where: str, why: str) -> DataError:
    return DataError(f"{path}, {where}: {why}")


def _ndjson_drawing(obj: Any, fmt: str) -> np.ndarray:
    if not isinstance(obj, dict) or "drawing" not in obj:
        raise DataError("not a QuickDraw object with a 'drawing' field")
    drawing = obj["drawing"]
    if not isinstance(drawing, list) or not drawing:
        raise DataError("empty drawing (no strokes)")
    raw = any(isinstance(s, list) and len(s) >= 3 for s in drawing) if fmt == "auto" else fmt == "raw"
    if raw:
        return raw_to_stroke3(drawing)
    lines = []
    for j, stroke in enumerate(drawing):
        if not isinstance(stroke, list) or len(stroke) != 2:
            raise DataError(f"stroke {j} is not [[xs], [ys]]")
        try:
            pts = np.asarray(stroke, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"stroke {j} has non-numeric coordinates or xs and ys of different lengths") from None
        if pts.ndim != 2:
            raise DataError(f"stroke {j} has xs and ys of different lengths")
        if not np.isfinite(pts).all() or pts.min(initial=0) < 0 or pts.max(initial=0) > 255:
            raise DataError(
                f"stroke {j} has coordinates outside 0..255, which simplified files never have; "
                "read it with format='raw' to rescale it"
            )
        lines.append(pts.T)
    if not any(len(line) for line in lines):
        raise DataError("empty drawing (strokes without points)")
    return lines_to_stroke3(lines)


def read_ndjson(
    path: str | os.PathLike, *, fmt: str = "auto", strict: bool = False, recognized_only: bool = False, limit: int | None = None
) -> Sketches:
    """Read a QuickDraw `.ndjson` file (raw or simplified).

    Args:
        path: the file.
        fmt: "raw" (rescale + RDP), "simplified" (0..255 already), or "auto" (raw when strokes
            carry timestamps).
        strict: raise on the first malformed line (naming its line number) instead of skipping it.
        recognized_only: keep only drawings the QuickDraw game recognised.
        limit: stop after this many sketches.

    Returns:
        `Sketches` with labels "word", "countrycode", "recognized", "key_id"; `skipped` counts
        malformed lines (bad JSON, empty drawings, out-of-range values).
    """
    if fmt not in ("auto", "raw", "simplified"):
        raise DataError(f"unknown ndjson format {fmt!r}; expected one of: auto, raw, simplified")
    path = Path(path)
    strokes, meta, skipped = [], {k: [] for k in ("word", "countrycode", "recognized", "key_id")}, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                s = _ndjson_drawing(obj, fmt)
            except (json.JSONDecodeError, DataError) as e:
                if strict:
                    why = f"malformed JSON ({e.msg})" if isinstance(e, json.JSONDecodeError) else str(e)
                    raise _bad(path, f"line {number}", f"{why}; fix or delete that line, or read without strict") from None
                skipped += 1
                continue
            if recognized_only and not obj.get("recognized", True):
                continue
            strokes.append(s)
            for k in meta:
                meta[k].append(obj.get(k, ""))
            if limit is not None and len(strokes) >= limit:
                break
    labels = {k: np.asarray(v) for k, v in meta.items()}
    labels["recognized"] = labels["recognized"].astype(bool)
    labels["key_id"] = labels["key_id"].astype(str)
    return Sketches(strokes, labels, {}, str(path), skipped)


def read_bin(path: str | os.PathLike, *, strict: bool = False, limit: int | None = None) -> Sketches:
    """Read a QuickDraw binary `.bin` file (the packed simplified drawings).

    A truncated or damaged tail is skipped and counted (`strict`: raise naming the record).
    """
    path = Path(path)
    data = path.read_bytes()
    pos, strokes, keys, codes, recog, skipped = 0, [], [], [], [], 0
    while pos < len(data) and (limit is None or len(strokes) < limit):
        record = len(strokes) + skipped + 1
        try:
            key_id, country, recognized, _ts, n_strokes = struct.unpack_from("<Q2sbIH", data, pos)
            p = pos + 17
            lines = []
            for _ in range(n_strokes):
                (n_points,) = struct.unpack_from("<H", data, p)
                p += 2
                if p + 2 * n_points > len(data):
                    raise struct.error("record runs past the end of the file")
                xy = np.frombuffer(data, np.uint8, 2 * n_points, p).astype(np.float32).reshape(2, n_points)
                p += 2 * n_points
                lines.append(xy.T)
            s = lines_to_stroke3(lines)
        except (struct.error, DataError) as e:
            if strict:
                raise _bad(path, f"record {record} (byte {pos})", f"{e}; the file is truncated or not a QuickDraw .bin") from None
            skipped += 1
            break  # records have no sync marker: nothing after a damaged one can be trusted
        strokes.append(s)
        keys.append(str(key_id))
        codes.append(country.decode("ascii", "replace"))
        recog.append(bool(recognized))
        pos = p
    labels = {"key_id": np.asarray(keys), "countrycode": np.asarray(codes), "recognized": np.asarray(recog, bool)}
    return Sketches(strokes, labels, {}, str(path), skipped)


def read_npz(path: str | os.PathLike, *, split: str = "train", limit: int | None = None) -> Sketches:
    """Read one split of a Sketch-RNN `.npz` file (`train`, `valid` or `test`).

    Warning:
        Sketch-RNN files are Python-2 pickles, loaded with `allow_pickle=True`: a pickle can run
        code when read. Only read files from a source you trust.

    Labels stored by `write_npz` (`<split>_label_<name>`, `label_names_<name>`) come back too.

    Raises:
        DataError: not an npz, the split missing (the keys found are named), or a sketch that is
            empty, of the wrong shape, or has pen states other than 0/1.
    """
    path = Path(path)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of: {', '.join(SPLITS)}")
    try:
        npz = np.load(path, encoding="latin1", allow_pickle=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise DataError(f"{path} is not a readable .npz file ({e}); expected a Sketch-RNN file") from None
    if not hasattr(npz, "files"):
        raise DataError(f"{path} holds a single array, not a Sketch-RNN .npz with train/valid/test keys")
    with npz:
        if split not in npz.files:
            raise DataError(
                f"{path} has no {split!r} array (keys: {', '.join(npz.files) or 'none'}); a Sketch-RNN "
                f"file has {', '.join(SPLITS)}: pick another split or convert the file"
            )
        items = npz[split]
        n = len(items) if limit is None else min(limit, len(items))
        strokes = [check_stroke3(items[i], what=f"{path} [{split}] sketch {i}") for i in range(n)]
        labels, names = {}, {}
        for key in npz.files:
            if key.startswith(f"{split}_label_"):
                labels[key[len(split) + 7 :]] = npz[key][:n]
            elif key.startswith("label_names_"):
                names[key[12:]] = [str(v) for v in npz[key]]
    return Sketches(strokes, labels, names, str(path), 0)


def write_npz(path: str | os.PathLike, splits: dict[str, Sketches]) -> Path:
    """Write sketches as a Sketch-RNN `.npz` (plus label arrays), atomically.

    Args:
        path: the output file.
        splits: split name ("train", "valid", "test") -> `Sketches`.
    """
    arrays: dict[str, np.ndarray] = {}
    for name, sk in splits.items():
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; expected one of: {', '.join(SPLITS)}")
        items = np.empty(len(sk.strokes), dtype=object)
        for i, s in enumerate(sk.strokes):
            items[i] = np.asarray(s, dtype=np.float32)
        arrays[name] = items
        for k, v in sk.labels.items():
            arrays[f"{name}_label_{k}"] = np.asarray(v)
        for k, v in sk.label_names.items():
            arrays[f"label_names_{k}"] = np.asarray(v, dtype=str)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return write_bytes_atomic(path, buf.getvalue())


def load_sketches(
    path: str | os.PathLike, *, split: str = "train", strict: bool = False, limit: int | None = None
) -> Sketches:
    """Read any supported sketch file, chosen by its extension (.npz, .ndjson/.jsonl, .bin).

    `split` applies to `.npz` files; `strict` to `.ndjson` and `.bin` files.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"sketch file {path} does not exist; download a QuickDraw or Sketch-RNN file first")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path, split=split, limit=limit)
    if suffix in (".ndjson", ".jsonl", ".json"):
        return read_ndjson(path, strict=strict, limit=limit)
    if suffix == ".bin":
        return read_bin(path, strict=strict, limit=limit)
    raise DataError(f"{path}: unknown sketch file type {suffix!r}; expected .npz, .ndjson or .bin")
