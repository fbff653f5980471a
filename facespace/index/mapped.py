"""Per-row arrays that live in memory-mapped files instead of RAM, for indexes larger than memory.

An `Index` whose backend says `mapped = True` (ivfpq) keeps its vectors, norms and ids here:
one file per array in a private scratch folder under the temp folder (`$TMPDIR`), grown in place
(the file is extended and mapped again, nothing is copied) as rows are added. The folder is
deleted when the index is garbage-collected; the saved index lives elsewhere
(`facespace.index.store.write_index_parts`), so the scratch files are never the saved ones.

An index loaded from a file maps that file's arrays read-only; the first add after loading copies
them into scratch files here, so adding never changes a saved index behind its back.

Rows picked here and there (the candidates re-ranked per query) are read with `take_rows`. On
this kernel (Linux 6.18, ext4 with large folios) a fault maps a whole folio, so reading 1,000 random
rows of a 1M x 32 file through the mapping put all its 122 MB in the process's resident set. So a
few rows are copied with positioned reads (`pread`, about 0.9 us a row from the page cache), and
many are read through the mapping a chunk of `CHUNK_ROWS` at a time, each chunk's pages unmapped
again at once (`madvise(MADV_DONTNEED)`: they stay in the page cache, not in the process): about
0.15 us a row, with at most one chunk's folios resident (54 MB for 8,192 random rows of a 10M x 32 file).

Example:
    >>> scratch = ScratchArrays()
    >>> a = scratch.grow("data", np.zeros((0, 4), np.float32), 0, (1024, 4))
    >>> a[:2] = 1.0
    >>> b = scratch.grow("data", a, 2, (2048, 4))          # the same file, longer
    >>> b.shape, float(b[1, 0])
    ((2048, 4), 1.0)
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

COPY_ROWS = 1 << 18  # rows copied at a time when an array moves into scratch (bounded memory)


class ScratchArrays:
    """Growable memory-mapped arrays in a temporary folder, one file per array name."""

    def __init__(self) -> None:
        self._folder: Path | None = None

    @property
    def folder(self) -> Path:
        """The scratch folder (created on first use; removed with this object)."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="facespace-index-"))
            weakref.finalize(self, shutil.rmtree, str(self._folder), True)
        return self._folder

    def grow(self, name: str, old: np.ndarray, rows: int, shape: tuple[int, ...]) -> np.memmap:
        """A writable mapped array of `shape` whose first `rows` rows are those of `old`.

        Args:
            name: the array's name (one file per name).
            old: the current array: this object's own mapping of `name` (extended in place), or
                anything else (a read-only mapping of a saved index, an in-RAM array: copied).
            rows: rows of `old` in use.
            shape: the new shape, `(capacity, ...)`, capacity >= 1.

        Returns:
            `np.memmap` of `shape` and `old`'s dtype.
        """
        path = self.folder / f"{name}.bin"
        nbytes = int(np.prod(shape)) * old.dtype.itemsize
        ours = isinstance(old, np.memmap) and old.filename is not None and Path(old.filename) == path
        if ours:
            old.flush()
            with open(path, "r+b") as f:
                f.truncate(nbytes)
            return map_file(path, old.dtype, "r+", shape)
        with open(path, "wb") as f:
            f.truncate(nbytes)
        new = map_file(path, old.dtype, "r+", shape)
        for start in range(0, rows, COPY_ROWS):
            stop = min(start + COPY_ROWS, rows)
            new[start:stop] = old[start:stop]
        return new


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a folder's new entries durable (a rename inside it survives a crash)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def map_file(path: str | os.PathLike, dtype: Any, mode: str, shape: tuple[int, ...]) -> np.memmap:
    """`np.memmap` of a file, with a file descriptor kept open beside it for `take_rows`.

    The descriptor keeps the file readable even after it is renamed or deleted (a saved index
    replaced by a new save), for as long as the array lives.
    """
    array = np.memmap(path, dtype, mode, shape=shape)
    fd = os.open(path, os.O_RDONLY)
    array._rows_fd = fd  # views do not inherit it: take_rows is given the whole array
    weakref.finalize(array, os.close, fd)
    return array


PREAD_MAX_ROWS = 1024  # fewer distinct rows than this are read with pread
CHUNK_ROWS = 8192  # rows read through the mapping before its pages are let go


def take_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`array[rows]` for any integer array `rows`; rows of a mapped file are copied without staying
    in the process's resident set (pread for a few, chunks through the mapping for many: module docstring).

    Args:
        array: `(n, ...)`, in RAM or from `map_file`.
        rows: integer array of any shape, values in [0, n).

    Returns:
        `rows.shape + array.shape[1:]`, a copy.
    """
    fd = getattr(array, "_rows_fd", None)
    if fd is None:
        return array[rows]
    rows = np.asarray(rows, np.int64)
    unique, inverse = np.unique(rows.ravel(), return_inverse=True)
    size = array.dtype.itemsize * int(np.prod(array.shape[1:], dtype=np.int64))
    base = int(array.offset)
    mapping = getattr(array, "_mmap", None)  # np.memmap's mmap object
    if len(unique) < PREAD_MAX_ROWS or mapping is None or not hasattr(mapping, "madvise"):
        blob = b"".join([os.pread(fd, size, base + r * size) for r in unique.tolist()])
        found = np.frombuffer(blob, array.dtype).reshape((len(unique), *array.shape[1:]))
    else:
        found = np.empty((len(unique), *array.shape[1:]), array.dtype)
        start = int(array.offset) - array.offset % mmap.ALLOCATIONGRANULARITY  # where np.memmap's mapping begins
        for i in range(0, len(unique), CHUNK_ROWS):
            chunk = unique[i:i + CHUNK_ROWS]
            found[i:i + len(chunk)] = array[chunk]  # faults map the rows' folios...
            lo = (base + int(chunk[0]) * size - start) // mmap.PAGESIZE * mmap.PAGESIZE
            hi = base + (int(chunk[-1]) + 1) * size - start
            mapping.madvise(mmap.MADV_DONTNEED, lo, min(hi, len(mapping)) - lo)  # ...and this unmaps them again
    return found[inverse].reshape(rows.shape + array.shape[1:])
