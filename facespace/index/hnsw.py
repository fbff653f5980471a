"""The HNSW backend: a navigable small-world graph (Malkov & Yashunin 2018) through hnswlib.

Why hnswlib rather than faiss-cpu's `IndexHNSWFlat`: both were measured side by side
(`benchmarks/search_speed.py`, results in `benchmarks/results/search_speed.md`). At equal `M`,
`ef_construction` and `ef_search` on 1M random vectors hnswlib reached slightly higher recall
(0.751 vs 0.723 at ef 128) while faiss answered somewhat more queries/s; build times were taken
under very different machine load and do not decide it. What decides it: hnswlib deletes natively
(`mark_deleted`: removed items are skipped while the graph still routes through them) and grows
with `resize_index`, while faiss's HNSW cannot remove items at all. Graph labels are the index's
row numbers.

The graph is saved inside the index file (hnswlib's own bytes), so loading does not rebuild it.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from facespace.errors import FacespaceError
from facespace.index.exact import check_settings, positive_int


def _threads(value: Any) -> int | None:
    if value is None:
        return None
    return positive_int("threads", value)


class HNSWBackend:
    """Approximate search on an HNSW graph.

    Settings:
        M: graph degree (default 16); more is slower to build, higher recall.
        ef_construction: candidate list while building (default 100).
        ef_search: candidate list while searching (default 64), the recall/speed knob;
            at least `k` is used.
        threads: threads for building and searching (None: all cores).
        seed: seed of the level assignment.
        library: "hnswlib" (recorded in saved files; the only one supported).
    """

    name = "hnsw"

    def __init__(
        self,
        dim: int,
        metric: str,
        *,
        M: int = 16,
        ef_construction: int = 100,
        ef_search: int = 64,
        threads: int | None = None,
        seed: int = 0,
        library: str = "hnswlib",
    ) -> None:
        if library != "hnswlib":
            raise FacespaceError(f"unknown HNSW library {library!r}; this facespace uses: hnswlib")
        self.dim, self.metric = dim, metric
        self.M = positive_int("M", M)
        self.ef_construction = positive_int("ef_construction", ef_construction)
        self.ef_search = positive_int("ef_search", ef_search)
        self.threads = _threads(threads)
        self.seed = int(seed)
        self._graph = None  # hnswlib.Index, created on the first add

    def settings(self) -> dict[str, Any]:
        return {
            "library": "hnswlib",
            "M": self.M,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "threads": self.threads,
            "seed": self.seed,
        }

    def configure(self, **settings: Any) -> None:
        check_settings(settings, {"ef_search": 0, "threads": 0}, self.name)
        if "ef_search" in settings:
            self.ef_search = positive_int("ef_search", settings["ef_search"])
        if "threads" in settings:
            self.threads = _threads(settings["threads"])

    def _new_graph(self, capacity: int | None):
        import hnswlib

        # cosine vectors arrive unit-length, so inner product ranks them; hnswlib's "l2" is squared
        graph = hnswlib.Index(space="l2" if self.metric == "l2" else "ip", dim=self.dim)
        if capacity is None:  # to be filled by load_index
            return graph
        graph.init_index(max_elements=max(capacity, 16), ef_construction=self.ef_construction, M=self.M,
                         random_seed=self.seed)
        return graph

    @property
    def _n_threads(self) -> int:
        return -1 if self.threads is None else self.threads

    def add(self, data: np.ndarray, start: int, stop: int) -> None:
        if self._graph is None:
            self._graph = self._new_graph(stop)
        elif stop > self._graph.get_max_elements():
            self._graph.resize_index(max(stop, 2 * self._graph.get_max_elements()))
        self._graph.add_items(data[start:stop], np.arange(start, stop), num_threads=self._n_threads)

    def remove(self, rows: np.ndarray) -> None:
        for row in rows:
            self._graph.mark_deleted(int(row))

    def state(self) -> dict[str, np.ndarray]:
        if self._graph is None:
            return {"graph": np.zeros(0, np.uint8)}
        with tempfile.TemporaryDirectory(prefix="facespace-hnsw-") as tmp:
            path = os.path.join(tmp, "graph.bin")
            self._graph.save_index(path)
            return {"graph": np.fromfile(path, np.uint8)}

    def restore(self, state: dict[str, np.ndarray], data: np.ndarray, alive: np.ndarray) -> None:
        blob = state.get("graph")
        if blob is None:
            raise FacespaceError("the index file has no HNSW graph in it; rebuild the index")
        if len(blob) == 0:
            if len(data):
                raise FacespaceError("the index file's HNSW graph is empty but it holds vectors; rebuild the index")
            return
        graph = self._new_graph(None)
        with tempfile.TemporaryDirectory(prefix="facespace-hnsw-") as tmp:
            path = os.path.join(tmp, "graph.bin")
            blob.tofile(path)
            graph.load_index(path, max_elements=len(data))
        if graph.get_current_count() != len(data):
            raise FacespaceError(
                f"the index file's HNSW graph holds {graph.get_current_count()} items but the file holds "
                f"{len(data)} vectors; rebuild the index"
            )
        self._graph = graph

    def search(self, data: np.ndarray, alive: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
        """Rows `(n, k)` of the nearest live vectors found in the graph."""
        self._graph.set_ef(max(self.ef_search, k))
        try:
            rows, _ = self._graph.knn_query(queries, k=k, num_threads=self._n_threads)
        except RuntimeError:
            # after many removals the graph may not reach k live items: widen the search, then
            # fall back to brute force over the live rows for this batch (exact, so never worse)
            self._graph.set_ef(max(4 * self.ef_search, 4 * k, 256))
            try:
                rows, _ = self._graph.knn_query(queries, k=k, num_threads=self._n_threads)
            except RuntimeError:
                from facespace.index.exact import ExactBackend

                exact = ExactBackend(self.dim, "ip" if self.metric != "l2" else "l2")
                exact.add(data, 0, len(data))
                return exact.search(data, alive, queries, k)
        return rows.astype(np.int64)
