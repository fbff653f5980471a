"""The exact backend: every query against every row, in chunks so memory stays bounded.

Scores come from one matrix product per (query batch, row chunk): for l2 `|x|^2 - 2 q.x`
(the `|q|^2` term does not change the ranking), for cosine and ip `-q.x` on the prepared vectors.
The `k` best of each chunk are kept and merged at the end; the scores go into one reused buffer, so
peak memory is about `query_batch * chunk_size * 4` bytes whatever the number of rows. The index
recomputes the final distances of the winners exactly. Matrix products and top-k run in torch (MKL,
multi-threaded by `torch.set_num_threads`), which beats numpy's `argpartition` several times at this
size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facespace.errors import FacespaceError


def positive_int(name: str, value: Any) -> int:
    """Check a positive integer setting, saying which one is wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise FacespaceError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def check_settings(given: dict[str, Any], known: dict[str, Any], backend: str) -> None:
    """Refuse settings a backend does not have, listing the ones it has."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise FacespaceError(
            f"the {backend} backend has no setting(s) {', '.join(unknown)}; "
            f"its settings are: {', '.join(sorted(known))}"
        )


class ExactBackend:
    """Brute force with bounded memory.

    Settings:
        chunk_size: rows scored at a time (default 16384).
        query_batch: queries scored at a time (default 256); memory ~ chunk_size * query_batch * 4 B.
    """

    name = "exact"

    def __init__(self, dim: int, metric: str, *, chunk_size: int = 16384, query_batch: int = 256) -> None:
        self.dim, self.metric = dim, metric
        self.chunk_size = positive_int("chunk_size", chunk_size)
        self.query_batch = positive_int("query_batch", query_batch)
        self._sq = np.zeros(0, np.float32)  # (rows,) squared norms, l2 only

    def settings(self) -> dict[str, Any]:
        return {"chunk_size": self.chunk_size, "query_batch": self.query_batch}

    def configure(self, **settings: Any) -> None:
        check_settings(settings, self.settings(), self.name)
        for key, value in settings.items():
            setattr(self, key, positive_int(key, value))

    def add(self, data: np.ndarray, start: int, stop: int) -> None:
        if self.metric == "l2":
            sq = np.einsum("nd,nd->n", data[start:stop], data[start:stop])
            self._sq = np.concatenate([self._sq[:start], sq.astype(np.float32)])

    def remove(self, rows: np.ndarray) -> None:
        """Nothing to do: removed rows are masked by the index's alive flags at search time."""

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def restore(self, state: dict[str, np.ndarray], data: np.ndarray, alive: np.ndarray) -> None:
        self.add(data, 0, len(data))

    def search(self, data: np.ndarray, alive: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
        """Rows `(n, k)` int64 of the k best alive rows per query (-1 where fewer exist)."""
        import torch

        n_rows = len(data)
        X = torch.from_numpy(data)  # (N, d), shares memory
        sq = torch.from_numpy(self._sq[:n_rows]) if self.metric == "l2" else None
        dead = np.flatnonzero(~alive)
        out = np.full((len(queries), k), -1, np.int64)
        # One score buffer for the whole call, written in place. A fresh (B, c) matrix per chunk
        # (16 MB by default) is served by glibc from the heap once the first one is freed (its mmap
        # threshold rises to that size), and the small top-k results kept between chunks pin the
        # freed blocks, so RSS grew by about one matrix per chunk: 0.8 GB at 1M rows (issue #26).
        buf = torch.empty(min(self.query_batch, len(queries)) * min(self.chunk_size, n_rows))
        with torch.no_grad():
            for qs in range(0, len(queries), self.query_batch):
                Q = torch.from_numpy(queries[qs : qs + self.query_batch])  # (B, d)
                values, rows = [], []
                for s in range(0, n_rows, self.chunk_size):
                    e = min(s + self.chunk_size, n_rows)
                    scores = buf[: len(Q) * (e - s)].view(len(Q), e - s)  # (B, c), contiguous
                    if sq is not None:
                        torch.addmm(sq[s:e].unsqueeze(0), Q, X[s:e].T, beta=1.0, alpha=-2.0, out=scores)
                    else:
                        torch.mm(Q, X[s:e].T, out=scores).neg_()
                    lo, hi = np.searchsorted(dead, [s, e])
                    if hi > lo:
                        scores[:, torch.from_numpy(dead[lo:hi] - s)] = float("inf")
                    v, i = torch.topk(scores, min(k, e - s), dim=1, largest=False, sorted=False)
                    values.append(v)
                    rows.append(i + s)
                v, i = torch.cat(values, 1), torch.cat(rows, 1)
                if v.shape[1] > k:
                    v, j = torch.topk(v, k, dim=1, largest=False, sorted=False)
                    i = torch.gather(i, 1, j)
                i = i.numpy()
                out[qs : qs + len(Q), : i.shape[1]] = np.where(np.isfinite(v.numpy()), i, -1)
        return out
