"""Locality-sensitive hashing: candidates from hash buckets, ranked by exact distance.

cosine and ip: random-hyperplane hashing (Charikar 2002). Each of `n_tables` tables hashes a
vector to the signs of its projections on `n_bits` random directions; two vectors at angle θ
share a bit with probability 1 - θ/π. (For ip this ranks candidates by angle; the exact re-ranking
then orders them by inner product.)
l2: p-stable hashing (Datar et al. 2004). Each of `n_bits` functions is `floor((a.x + b) / w)`
with Gaussian `a`, uniform `b` in [0, w); a table's key combines them.

The recall/speed knob is `n_probes` (multi-probe, Lv et al. 2007): each table also looks in the
`n_probes` buckets next to the query's, those where the query lies closest to a boundary (the
smallest |projection| for hyperplanes, the nearest cell walls for p-stable). More tables and
probes give more candidates: higher recall, slower queries; more bits give smaller buckets.
Removed rows stay in the tables and are skipped. A query whose buckets hold fewer than `k` live
vectors gets fewer results (padded with -1 / inf).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facespace.errors import FacespaceError
from facespace.index.exact import check_settings, positive_int

_MIX = np.random.default_rng(12345).integers(1, 2**62, size=64, dtype=np.int64) | 1  # odd multipliers


class LSHBackend:
    """Multi-table LSH with query-directed multi-probe.

    Settings:
        n_tables: hash tables (default 8).
        n_bits: hyperplanes (cosine/ip) or p-stable functions (l2) per table (default 12 / 8).
        n_probes: extra buckets probed per table at search time (default 4).
        bucket_width: p-stable cell width `w` (l2 only); None picks 4x the median nearest-neighbour
            distance of a sample of the first vectors added (then stored).
        query_batch: queries processed together (bounds memory).
        seed: seed of the random projections.
    """

    name = "lsh"

    def __init__(
        self,
        dim: int,
        metric: str,
        *,
        n_tables: int = 8,
        n_bits: int | None = None,
        n_probes: int = 4,
        bucket_width: float | None = None,
        query_batch: int = 128,
        seed: int = 0,
    ) -> None:
        self.dim, self.metric = dim, metric
        self.n_tables = positive_int("n_tables", n_tables)
        self.n_bits = positive_int("n_bits", n_bits if n_bits is not None else (8 if metric == "l2" else 12))
        if metric != "l2" and self.n_bits > 62:
            raise FacespaceError(f"n_bits must be at most 62 for the {metric} metric; got {self.n_bits}")
        if self.n_bits > len(_MIX):
            raise FacespaceError(f"n_bits must be at most {len(_MIX)}; got {self.n_bits}")
        self.n_probes = self._probes(n_probes)
        if bucket_width is not None and not (isinstance(bucket_width, (int, float)) and bucket_width > 0):
            raise FacespaceError(f"bucket_width must be a positive number or None; got {bucket_width!r}")
        self.bucket_width = None if bucket_width is None else float(bucket_width)
        self.query_batch = positive_int("query_batch", query_batch)
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        self._planes = rng.standard_normal((dim, self.n_tables * self.n_bits)).astype(np.float32)  # (d, T*B)
        self._offsets = rng.random(self.n_tables * self.n_bits).astype(np.float32)  # (T*B,) in [0, 1)
        self._keys = np.zeros((self.n_tables, 0), np.int64)  # (T, rows) key of each row
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # per table: sorted keys, row order
        self._sq = np.zeros(0, np.float32)  # (rows,) squared norms, l2 only

    def _probes(self, n: Any) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise FacespaceError(f"n_probes must be a non-negative integer; got {n!r}")
        return int(n)

    def settings(self) -> dict[str, Any]:
        return {
            "n_tables": self.n_tables,
            "n_bits": self.n_bits,
            "n_probes": self.n_probes,
            "bucket_width": self.bucket_width,
            "query_batch": self.query_batch,
            "seed": self.seed,
        }

    def configure(self, **settings: Any) -> None:
        check_settings(settings, {"n_probes": 0, "query_batch": 0}, self.name)
        if "n_probes" in settings:
            self.n_probes = self._probes(settings["n_probes"])
        if "query_batch" in settings:
            self.query_batch = positive_int("query_batch", settings["query_batch"])

    # ---- hashing
    def _project(self, x: np.ndarray) -> np.ndarray:
        """`(n, T, B)` float32: raw projections, in cell units for l2."""
        p = (x @ self._planes).reshape(len(x), self.n_tables, self.n_bits)
        if self.metric == "l2":
            p = p / np.float32(self.bucket_width) + self._offsets.reshape(self.n_tables, self.n_bits)
        return p

    def _codes(self, p: np.ndarray) -> np.ndarray:
        """`(..., B)` per-function values of projections: bits, or floor cells for l2."""
        return np.floor(p).astype(np.int64) if self.metric == "l2" else (p > 0).astype(np.int64)

    def _key(self, codes: np.ndarray) -> np.ndarray:
        """Combine `(..., B)` int codes into `(...)` int64 keys (wrapping multiply-add)."""
        if self.metric != "l2":
            return codes @ (np.int64(1) << np.arange(self.n_bits, dtype=np.int64))
        with np.errstate(over="ignore"):
            return (codes * _MIX[: self.n_bits]).sum(-1)

    def _pick_width(self, x: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        sample = x[rng.choice(len(x), size=min(len(x), 4000), replace=False)]
        if len(sample) < 2:
            self.bucket_width = 1.0
            return
        q = sample[: min(200, len(sample))]
        d2 = (q**2).sum(1)[:, None] - 2 * q @ sample.T + (sample**2).sum(1)[None]
        d2[np.arange(len(q)), np.arange(len(q))] = np.inf
        nn = np.sqrt(np.maximum(d2.min(1), 0))
        self.bucket_width = float(max(4.0 * np.median(nn), 1e-6))

    def add(self, data: np.ndarray, start: int, stop: int) -> None:
        if self.metric == "l2" and self.bucket_width is None:
            self._pick_width(data[:stop])
        keys = np.empty((self.n_tables, stop - start), np.int64)
        for s in range(start, stop, 65536):
            e = min(s + 65536, stop)
            keys[:, s - start : e - start] = self._key(self._codes(self._project(data[s:e]))).T
        self._keys = np.concatenate([self._keys[:, :start], keys], axis=1)
        if self.metric == "l2":
            sq = np.einsum("nd,nd->n", data[start:stop], data[start:stop]).astype(np.float32)
            self._sq = np.concatenate([self._sq[:start], sq])
        self._sorted = None

    def remove(self, rows: np.ndarray) -> None:
        """Nothing to do: removed rows are skipped by the alive flags."""

    def state(self) -> dict[str, np.ndarray]:
        return {}  # the tables are rebuilt from the vectors on load (the seed fixes them)

    def restore(self, state: dict[str, np.ndarray], data: np.ndarray, alive: np.ndarray) -> None:
        self.add(data, 0, len(data))

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None:
            order = np.argsort(self._keys, axis=1, kind="stable")
            self._sorted = (np.take_along_axis(self._keys, order, 1), order.astype(np.int64))
        return self._sorted

    # ---- search
    def _probe_keys(self, p: np.ndarray) -> np.ndarray:
        """`(n, T, 1 + P)` keys: each query's bucket, then the P nearest neighbouring buckets."""
        codes = self._codes(p)  # (n, T, B)
        base = self._key(codes)  # (n, T)
        P = min(self.n_probes, self.n_bits if self.metric != "l2" else 2 * self.n_bits)
        if P == 0:
            return base[..., None]
        if self.metric != "l2":
            margin = np.abs(p)  # closeness to each hyperplane
            which = np.argsort(margin, axis=-1)[..., :P]  # (n, T, P) bits to flip
            flip = np.take_along_axis(codes, which, -1)
            delta = np.where(flip == 1, -1, 1) * (np.int64(1) << which)
            return np.concatenate([base[..., None], base[..., None] + delta], -1)
        frac = p - np.floor(p)
        gaps = np.concatenate([frac, 1.0 - frac], -1)  # (n, T, 2B): distance to lower / upper wall
        which = np.argsort(gaps, axis=-1)[..., :P]
        step = np.where(which < self.n_bits, -1, 1)
        with np.errstate(over="ignore"):
            delta = step * _MIX[which % self.n_bits]
            return np.concatenate([base[..., None], base[..., None] + delta], -1)

    def _candidates(self, keys: np.ndarray, order: np.ndarray, probes: np.ndarray, n_rows: int) -> np.ndarray:
        """Distinct `query * n_rows + row` pairs, sorted, from every table's probed buckets.

        Each table is sorted by key once (`_tables`), so a bucket is one `searchsorted` range;
        the ranges of all queries and probes are expanded together with `repeat`, and duplicates
        (a row found by several tables or probes) go in one sort.
        """
        b, _, n_keys = probes.shape
        pairs = []
        qbase = np.repeat(np.arange(b, dtype=np.int64) * n_rows, n_keys)  # (b * (1+P),)
        for t in range(self.n_tables):
            lo = np.searchsorted(keys[t], probes[:, t].ravel(), "left")
            hi = np.searchsorted(keys[t], probes[:, t].ravel(), "right")
            lengths = hi - lo
            total = int(lengths.sum())
            if total == 0:
                continue
            ends = np.cumsum(lengths)
            pos = np.arange(total, dtype=np.int64) + np.repeat(lo - (ends - lengths), lengths)  # offsets in the table
            pairs.append(np.repeat(qbase, lengths) + order[t][pos])
        if not pairs:
            return np.zeros(0, np.int64)
        pair = np.sort(np.concatenate(pairs))
        first = np.ones(len(pair), bool)
        first[1:] = pair[1:] != pair[:-1]
        return pair[first]

    def search(self, data: np.ndarray, alive: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
        """Rows `(n, k)` of the best live candidates per query (-1 where fewer were found)."""
        keys, order = self._tables()
        out = np.full((len(queries), k), -1, np.int64)
        n_rows = len(data)
        for qs in range(0, len(queries), self.query_batch):
            q = queries[qs : qs + self.query_batch]
            pair = self._candidates(keys, order, self._probe_keys(self._project(q)), n_rows)
            qidx, rows = np.divmod(pair, np.int64(n_rows))
            keep = alive[rows]
            qidx, rows = qidx[keep], rows[keep]
            if len(rows) == 0:
                continue
            scores = np.empty(len(rows), np.float32)
            for s in range(0, len(rows), 1 << 20):  # bounded memory: ~128 MB of candidate vectors
                cand, qq = data[rows[s : s + (1 << 20)]], q[qidx[s : s + (1 << 20)]]
                dots = np.einsum("nd,nd->n", cand, qq)
                # l2 ranks by |x|^2 - 2 q.x (|q|^2 is the same for every candidate of a query)
                scores[s : s + len(cand)] = self._sq[rows[s : s + (1 << 20)]] - 2 * dots if self.metric == "l2" else -dots
            # pairs are sorted by query: lay each query's scores in a row, then a top-k per row
            counts = np.bincount(qidx, minlength=len(q))
            starts = np.cumsum(counts) - counts
            col = np.arange(len(qidx)) - starts[qidx]
            width = int(counts.max())
            grid = np.full((len(q), width), np.inf, np.float32)
            grid[qidx, col] = scores
            kk = min(k, width)
            best = np.argpartition(grid, kk - 1, axis=1)[:, :kk] if width > kk else np.broadcast_to(np.arange(width), (len(q), width))
            best = np.take_along_axis(best, np.argsort(np.take_along_axis(grid, best, 1), axis=1, kind="stable"), 1)
            found = np.take_along_axis(grid, best, 1) < np.inf
            where = np.minimum(starts[:, None] + best, max(len(rows) - 1, 0))
            out[qs : qs + len(q), :kk] = np.where(found, rows[where], -1)
        return out
