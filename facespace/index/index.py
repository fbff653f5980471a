"""`Index`: vectors with ids and metadata, searched by one of four backends (faiss shape).

The index keeps every vector it was given (prepared for its metric, plus the norms it needs to
give the raw vectors back), an int64 id and an optional metadata dict per row. Backends see only
row numbers; the index maps rows to ids, drops removed rows and recomputes the final distances
exactly, so every backend reports the same distances in the same units. With the ivfpq backend the
vectors, norms and ids live in memory-mapped files (`facespace.index.mapped`), not in RAM, and the
index is saved as a file plus a parts folder (`facespace.index.store`).

Distances (smaller is always nearer):
    cosine: 1 - cos(q, x), in [0, 2]. A zero vector is at distance 1 from everything.
    l2:     Euclidean distance ||q - x||, *not* squared.
    ip:     -<q, x>, the negative inner product.
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Any, Iterable

import numpy as np

from facespace.errors import IndexingError
from facespace.index.mapped import ScratchArrays, take_rows
from facespace.index.store import read_header, read_parts, write_index_file, write_index_parts
from facespace.protocol import METRICS as DISTANCES

METRICS = (*DISTANCES, "ip")  # the index also ranks by inner product (a similarity)
BACKENDS = ("exact", "lsh", "hnsw", "ivfpq")


def _backend_class(name: str) -> type:
    if name == "exact":
        from facespace.index.exact import ExactBackend

        return ExactBackend
    if name == "lsh":
        from facespace.index.lsh import LSHBackend

        return LSHBackend
    if name == "hnsw":
        from facespace.index.hnsw import HNSWBackend

        return HNSWBackend
    if name == "ivfpq":
        from facespace.index.ivfpq import IVFPQBackend

        return IVFPQBackend
    raise IndexingError(f"unknown backend {name!r}; expected one of: {', '.join(BACKENDS)}")


def check_vectors(vectors: Any, dim: int, what: str = "vectors") -> np.ndarray:
    """Return `vectors` as a C-contiguous `(n, dim)` float32 array, or raise saying what is wrong."""
    x = np.asarray(vectors)
    if x.ndim == 1 and x.size == dim:
        x = x[None]
    if x.ndim != 2:
        raise IndexingError(f"{what} must be a 2-d array (n, {dim}); got shape {x.shape}")
    if x.shape[1] != dim:
        raise IndexingError(
            f"{what} have dimension {x.shape[1]} but the index has dimension {dim}; "
            "encode with the model the index was built with"
        )
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise IndexingError(f"{what} must be real numbers; got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise IndexingError(
            f"{what} contain NaN or infinite values (rows {bad[:5].tolist()}"
            f"{'...' if len(bad) > 5 else ''}); fix or drop those rows first"
        )
    return x


class Index:
    """A nearest-neighbour index over `(n, dim)` float32 vectors.

    Args:
        dim: length of each vector.
        metric: "cosine" (1 - cos), "l2" (Euclidean, not squared) or "ip" (negative inner product).
        backend: "exact" (chunked matrix products), "lsh" (locality-sensitive hashing),
            "hnsw" (a graph, through hnswlib) or "ivfpq" (faiss IVF-PQ, vectors on disk).
        **settings: backend settings, e.g. `ef_search=64` for hnsw, `n_tables=16` for lsh or
            `n_lists=4096, n_probes=32` for ivfpq.

    Attributes:
        model: what the vectors were made with: `{"hash", "weights_hash", "kind", "path",
            "image_shape", "code_size"}`, or None for a pure-vector index.

    Example:
        >>> index = Index(4, metric="l2")
        >>> index.add(np.eye(4, dtype=np.float32), metadata=[{"name": c} for c in "abcd"])
        >>> d, ids = index.search(np.eye(4, dtype=np.float32)[:1], k=2)
        >>> ids.tolist(), [round(v, 3) for v in d[0].tolist()]
        ([[0, 1]], [0.0, 1.414])
    """

    def __init__(self, dim: int, metric: str = "cosine", backend: str = "exact", **settings: Any) -> None:
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
            raise IndexingError(f"dim must be a positive integer; got {dim!r}")
        if metric not in METRICS:
            raise IndexingError(f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}")
        self.dim = int(dim)
        self.metric = metric
        self.backend = backend
        self.model: dict[str, Any] | None = None
        cls = _backend_class(backend)
        known = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "dim", "metric")]
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise IndexingError(
                f"the {backend} backend has no setting(s) {', '.join(unknown)}; its settings are: {', '.join(known)}"
            )
        self._impl = cls(self.dim, metric, **settings)
        self._scratch = ScratchArrays() if getattr(cls, "mapped", False) else None  # rows in files, not RAM
        self._data = np.zeros((0, self.dim), np.float32)  # (capacity, dim) prepared vectors
        self._norms = np.zeros(0, np.float32)  # (capacity,) norms of the raw vectors (cosine only)
        self._ids = np.zeros(0, np.int64)  # (capacity,) id of each row
        self._alive = np.zeros(0, bool)  # (capacity,) False once removed
        self._meta: list[dict[str, Any]] | None = None  # per row, None until some metadata is given
        self._rows = 0  # rows in use (alive or removed)
        self._count = 0  # alive rows
        self._lookup: tuple[np.ndarray, np.ndarray] | None = None  # (sorted alive ids, their rows)

    # ---- sizes and settings
    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"Index(dim={self.dim}, metric={self.metric!r}, backend={self.backend!r}, n={len(self)})"

    @property
    def settings(self) -> dict[str, Any]:
        """Every setting of the backend, search-time ones included (stored in the saved file)."""
        return self._impl.settings()

    def configure(self, **settings: Any) -> "Index":
        """Change search-time settings (e.g. `ef_search`, `n_probes`, `threads`). Returns self."""
        self._impl.configure(**settings)
        return self

    @property
    def ids(self) -> np.ndarray:
        """`(n,)` int64 ids of the stored vectors, in insertion order."""
        return self._ids[: self._rows][self._alive[: self._rows]].copy()

    # ---- vectors in
    def prepare(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Map checked raw vectors to what the backends compare: unit vectors for cosine."""
        if self.metric != "cosine":
            return vectors, None
        norms = np.linalg.norm(vectors, axis=1).astype(np.float32)
        safe = np.where(norms > 0, norms, 1.0).astype(np.float32)
        return np.ascontiguousarray(vectors / safe[:, None], dtype=np.float32), norms

    def add(
        self,
        vectors: Any,
        ids: Iterable[int] | None = None,
        metadata: list[dict[str, Any]] | None = None,
    ) -> np.ndarray:
        """Add vectors, with ids (default: counting on from the largest id) and metadata dicts.

        Args:
            vectors: `(n, dim)` float array, finite.
            ids: `(n,)` distinct int64 ids not already in the index.
            metadata: n JSON-serialisable dicts (e.g. `{"path": ..., "name": ...}`).

        Returns:
            `(n,)` int64, the ids given to the vectors.
        """
        x = check_vectors(vectors, self.dim)
        n = len(x)
        new_ids = self._new_ids(n, ids)
        if metadata is not None:
            metadata = list(metadata)
            if len(metadata) != n or not all(isinstance(m, dict) for m in metadata):
                raise IndexingError(f"metadata must be a list of {n} dicts, one per vector")
        if n == 0:
            return new_ids
        prepared, norms = self.prepare(x)
        start, stop = self._rows, self._rows + n
        self._reserve(stop)
        self._data[start:stop] = prepared
        if norms is not None:
            self._norms[start:stop] = norms
        self._ids[start:stop] = new_ids
        self._alive[start:stop] = True
        if metadata is not None or self._meta is not None:
            if self._meta is None:
                self._meta = [{} for _ in range(start)]
            self._meta.extend([dict(m) for m in metadata] if metadata is not None else [{} for _ in range(n)])
        self._rows, self._count, self._lookup = stop, self._count + n, None
        self._impl.add(self._data, start, stop)
        return new_ids

    def _new_ids(self, n: int, ids: Iterable[int] | None) -> np.ndarray:
        if ids is None:
            first = int(self._ids[: self._rows].max()) + 1 if self._rows else 0
            return np.arange(first, first + n, dtype=np.int64)
        raw = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if raw.shape != (n,) or (n and not np.issubdtype(raw.dtype, np.integer)):
            raise IndexingError(f"ids must be {n} integers, one per vector; got shape {raw.shape}, dtype {raw.dtype}")
        new = raw.astype(np.int64)
        if len(np.unique(new)) != n:
            raise IndexingError("ids must be distinct; the same id was given twice")
        if (new < 0).any():
            raise IndexingError("ids must be non-negative (-1 marks padding in search results)")
        clash = new[self._contains(new)]
        if len(clash):
            raise IndexingError(f"ids {clash[:5].tolist()} are already in the index; remove them first")
        return new

    def _reserve(self, rows: int) -> None:
        cap = len(self._ids)
        if rows <= cap:
            return
        cap = max(rows, 2 * cap, 1024)
        for name, shape in (("_data", (cap, self.dim)), ("_norms", (cap,)), ("_ids", (cap,)), ("_alive", (cap,))):
            old = getattr(self, name)
            if name == "_norms" and self.metric != "cosine":
                continue
            if self._scratch is not None and name != "_alive":
                setattr(self, name, self._scratch.grow(name[1:], old, self._rows, shape))
                continue
            new = np.zeros(shape, old.dtype)
            new[: self._rows] = old[: self._rows]
            setattr(self, name, new)

    # ---- ids
    def _table(self) -> tuple[np.ndarray, np.ndarray]:
        if self._lookup is None:
            rows = np.flatnonzero(self._alive[: self._rows])
            order = np.argsort(self._ids[rows], kind="stable")
            self._lookup = (self._ids[rows][order], rows[order])
        return self._lookup

    def _contains(self, ids: np.ndarray) -> np.ndarray:
        keys, _ = self._table()
        pos = np.minimum(np.searchsorted(keys, ids), max(len(keys) - 1, 0))
        return (keys[pos] == ids) if len(keys) else np.zeros(len(ids), bool)

    def _rows_of(self, ids: Any) -> np.ndarray:
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        found = self._contains(ids)
        if not found.all():
            missing = ids[~found]
            raise IndexingError(f"ids {missing[:5].tolist()} are not in the index (it holds {len(self)} vectors)")
        keys, rows = self._table()
        return rows[np.searchsorted(keys, ids)]

    def remove(self, ids: Any) -> int:
        """Remove vectors by id; unknown ids raise. Returns how many were removed."""
        ids = np.unique(np.atleast_1d(np.asarray(ids, dtype=np.int64)))
        rows = self._rows_of(ids)
        self._alive[rows] = False
        self._count -= len(rows)
        self._lookup = None
        self._impl.remove(rows)
        return len(rows)

    def __contains__(self, id_: int) -> bool:
        return bool(self._contains(np.array([id_], np.int64))[0])

    def get_metadata(self, ids: Any) -> list[dict[str, Any]]:
        """The metadata dicts of `ids` (an empty dict where none was given); -1 gives {}."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64)).ravel()
        out: list[dict[str, Any]] = [{} for _ in ids]
        real = ids >= 0
        if self._meta is not None and real.any():
            for j, row in zip(np.flatnonzero(real), self._rows_of(ids[real])):
                out[j] = dict(self._meta[row])
        elif real.any():
            self._rows_of(ids[real])  # raise on unknown ids
        return out

    def reconstruct(self, ids: Any) -> np.ndarray:
        """The stored raw vectors of `ids`: `(n, dim)` float32 (for cosine, up to float rounding)."""
        rows = self._rows_of(ids)
        x = self._data[rows].copy()
        if self.metric == "cosine":
            x *= self._norms[rows, None]
        return x

    # ---- search
    def search(self, queries: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The `k` nearest stored vectors of each query.

        Args:
            queries: `(n, dim)` float array, finite.
            k: neighbours per query, >= 1. When the index holds fewer than `k` vectors the
                results are padded.

        Returns:
            `(distances, ids)`: `(n, k)` float32 (nearest first, `inf` as padding) and `(n, k)`
            int64 (`-1` as padding).
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise IndexingError(f"k must be a positive integer; got {k!r}")
        q = check_vectors(queries, self.dim, "queries")
        k = int(k)
        dist = np.full((len(q), k), np.inf, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        if len(q) == 0 or self._count == 0:
            return dist, ids
        qp, _ = self.prepare(q)
        kk = min(k, self._count)
        rows = self._impl.search(self._data[: self._rows], self._alive[: self._rows], qp, kk)
        d, rows = self._refine(qp, rows, kk)
        dist[:, :kk], ids[:, :kk] = d[:, :kk], np.where(rows[:, :kk] >= 0, take_rows(self._ids, np.maximum(rows[:, :kk], 0)), -1)
        return dist, ids

    def _refine(self, q: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact distances of candidate rows `(n, c)` (-1 = none): the `min(k, c)` nearest of each
        query, sorted nearest first (ties in candidate order)."""
        rows = np.asarray(rows, np.int64)
        valid = rows >= 0
        valid[valid] &= self._alive[rows[valid]]
        cand = take_rows(self._data, np.where(valid, rows, 0))  # (n, c, dim); pread from a mapped file
        if self.metric == "l2":
            diff = cand - q[:, None, :]
            d = np.sqrt(np.einsum("ncd,ncd->nc", diff, diff))
        elif self.metric == "cosine":
            d = 1.0 - np.einsum("ncd,nd->nc", cand, q)
        else:
            d = -np.einsum("ncd,nd->nc", cand, q)
        d = np.where(valid, d, np.inf).astype(np.float32)
        if d.shape[1] > 4 * k:  # many candidates, few wanted: sort only the k nearest (and their ties)
            kth = np.partition(d, k - 1, axis=1)[:, k - 1 : k]
            keep = d <= kth  # every candidate as near as the k-th, so stable ties keep candidate order
            pick = np.argsort(~keep, axis=1, kind="stable")[:, : int(keep.sum(1).max())]  # kept, in order
            d, rows = np.take_along_axis(d, pick, 1), np.take_along_axis(rows, pick, 1)
        order = np.argsort(d, axis=1, kind="stable")
        d = np.take_along_axis(d, order, 1)
        rows = np.where(np.isfinite(d), np.take_along_axis(rows, order, 1), -1)
        return d, rows

    # ---- files
    def save(self, path: str | os.PathLike) -> None:
        """Write the index to one file (ivfpq: a file and a parts folder), atomically (`facespace.index.store`)."""
        mapped = self._scratch is not None
        state = {} if mapped else {f"backend.{k}": v for k, v in self._impl.state().items()}
        rows = np.arange(self._rows)
        if not state and not mapped:  # nothing refers to row numbers: drop removed rows
            rows = rows[self._alive[: self._rows]]
        n = self._rows
        arrays = {"data": self._data[:n], "ids": self._ids[:n]} if mapped else {"data": self._data[rows], "ids": self._ids[rows]}
        if self.metric == "cosine":
            arrays["norms"] = self._norms[:n] if mapped else self._norms[rows]
        tensors: dict[str, np.ndarray] = {**({} if mapped else arrays), "alive": self._alive[rows].astype(np.uint8)}
        if self._meta is not None:
            try:
                text = json.dumps([self._meta[r] for r in rows])
            except (TypeError, ValueError) as e:
                raise IndexingError(f"cannot save the index: metadata must be JSON-serialisable ({e})") from None
            tensors["metadata"] = np.frombuffer(text.encode("utf-8"), np.uint8).copy()
        tensors.update(state)
        fields = {"dim": self.dim, "metric": self.metric, "backend": self.backend, "settings": self.settings,
                  "model": self.model, "count": len(self), "rows": len(rows)}
        if mapped:
            write_index_parts(path, fields, tensors, arrays, self._impl.parts(self._data[:n], self._alive[:n]))
        else:
            write_index_file(path, fields, tensors)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Index":
        """Read an index written by `save`; a missing, truncated, foreign or inconsistent file raises."""
        header, t = read_header(path)
        try:
            index = cls(int(header["dim"]), header["metric"], header["backend"], **header["settings"])
            arrays, files = read_parts(path, header) if header.get("parts") else (t, {})
            data, ids, alive = arrays["data"], arrays["ids"], t["alive"].astype(bool)
            rows = int(header["rows"])
            if data.shape != (rows, index.dim) or ids.shape != (rows,) or alive.shape != (rows,):
                raise ValueError("tensor shapes do not match the header")
            if index._scratch is not None:  # mapped read-only; the first add copies them to scratch
                index._data, index._ids, index._alive = data, ids, alive.copy()
            else:
                index._data, index._ids, index._alive = data.astype(np.float32, copy=True), ids.copy(), alive.copy()
            if index.metric == "cosine":
                index._norms = arrays["norms"] if index._scratch is not None else arrays["norms"].astype(np.float32, copy=True)
            if "metadata" in t:
                index._meta = json.loads(t["metadata"].tobytes().decode("utf-8"))
                if len(index._meta) != rows:
                    raise ValueError("metadata length does not match the rows")
            index._rows, index._count = rows, int(alive.sum())
            index.model = header.get("model")
            if index._scratch is not None:
                index._impl.restore_parts(files, index._data, index._alive)
            else:
                state = {k[len("backend."):]: v for k, v in t.items() if k.startswith("backend.")}
                index._impl.restore(state, index._data, index._alive)
        except IndexingError:
            raise
        except Exception as e:
            raise IndexingError(f"{path} is an inconsistent facespace index ({e}); rebuild it") from None
        return index
