"""LFW pair lists: View 2 `pairs.txt` (10 folds) and View 1 `pairsDevTrain.txt` / `pairsDevTest.txt`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence

from facespace.errors import DataError


class Pair(NamedTuple):
    """Two LFW images and whether they show the same person.

    `fold` counts from 0 (View 1 files have one fold, 0); image indices count from 1, as in the
    file names (`Name_0001.jpg`).
    """

    fold: int
    name_a: str
    index_a: int
    name_b: str
    index_b: int
    same: bool


def read_pairs(path: str | os.PathLike) -> list[Pair]:
    """Parse an LFW pairs file.

    View 2 (`pairs.txt`) starts with `folds\\tn` (`10\\t300`); each fold is `n` matched lines
    `name\\ti\\tj` then `n` mismatched lines `name1\\ti\\tname2\\tj`. View 1 files start with `n`
    alone: one fold of `n` matched then `n` mismatched.

    Args:
        path: the pairs file.

    Returns:
        The pairs in file order, with fold and label.

    Raises:
        DataError: a missing file, a bad header, a malformed line (naming file and line number) or a
            wrong number of lines.

    Example:
        >>> pairs = read_pairs("../shared/data/lfw/pairs.txt")  # doctest: +SKIP
        >>> len(pairs), pairs[0]  # doctest: +SKIP
        (6000, Pair(fold=0, name_a='Abel_Pacheco', index_a=1, name_b='Abel_Pacheco', index_b=4, same=True))
    """
    path = Path(path)
    try:
        lines = path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such pairs file; check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the pairs file ({e})") from None
    if not lines or not lines[0].strip():
        raise DataError(f"{path}:1: empty pairs file; expected a header '10\\t300' (View 2) or 'N' (View 1)")
    header = lines[0].split()
    try:
        folds, per_fold = (1, int(header[0])) if len(header) == 1 else (int(header[0]), int(header[1]))
    except ValueError:
        folds, per_fold = -1, -1
    if len(header) > 2 or folds < 1 or per_fold < 1:
        raise DataError(f"{path}:1: bad header {lines[0]!r}; expected '10\\t300' (View 2) or 'N' (View 1)")
    body = [(no, line) for no, line in enumerate(lines[1:], start=2) if line.strip()]
    expected = folds * 2 * per_fold
    if len(body) != expected:
        raise DataError(f"{path}: the header {lines[0].strip()!r} promises {expected} pairs "
                        f"({folds} fold(s) of {per_fold} matched + {per_fold} mismatched), found {len(body)} lines")
    pairs = []
    for k, (no, line) in enumerate(body):
        fold, same = k // (2 * per_fold), (k % (2 * per_fold)) < per_fold
        fields = line.split()
        try:
            if same and len(fields) == 3:
                pairs.append(Pair(fold, fields[0], _index(fields[1]), fields[0], _index(fields[2]), True))
                continue
            if not same and len(fields) == 4:
                pairs.append(Pair(fold, fields[0], _index(fields[1]), fields[2], _index(fields[3]), False))
                continue
        except ValueError:
            pass
        want = "'name\\ti\\tj' (matched)" if same else "'name1\\ti\\tname2\\tj' (mismatched)"
        raise DataError(f"{path}:{no}: malformed line {line!r}; expected {want} with positive image numbers")
    return pairs


def read_pair_files(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Pair]:
    """`read_pairs` of one file, or of several as one list: each file's folds numbered after the
    previous file's, so View 1 (`pairsDevTrain.txt pairsDevTest.txt`) reads as two folds, 0 and 1,
    and the View 2 machinery (threshold on the other folds, per-fold training) runs it unchanged.

    Example:
        >>> pairs = read_pair_files(["pairsDevTrain.txt", "pairsDevTest.txt"])  # doctest: +SKIP
        >>> sorted({p.fold for p in pairs}), len(pairs)  # doctest: +SKIP
        ([0, 1], 3200)
    """
    files = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not files:
        raise DataError("no pairs file given; pass pairs.txt (View 2) or pairsDevTrain.txt pairsDevTest.txt (View 1)")
    out: list[Pair] = []
    for path in files:
        first = 1 + max((p.fold for p in out), default=-1)
        out += [p._replace(fold=p.fold + first) for p in read_pairs(path)]
    return out


def _index(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def image_path(lfw_root: str | os.PathLike, name: str, index: int) -> Path:
    """`<lfw_root>/<name>/<name>_NNNN.jpg`."""
    return Path(lfw_root) / name / f"{name}_{index:04d}.jpg"


def pair_paths(pairs: Sequence[Pair], lfw_root: str | os.PathLike) -> list[tuple[Path, Path]]:
    """The two image files of each pair under an LFW folder (existence is not checked).

    Args:
        pairs: from `read_pairs`.
        lfw_root: a folder in the LFW layout, e.g. `lfw-deepfunneled/`.

    Returns:
        `[(path_a, path_b)]`, one per pair.
    """
    return [(image_path(lfw_root, p.name_a, p.index_a), image_path(lfw_root, p.name_b, p.index_b)) for p in pairs]
