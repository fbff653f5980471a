"""The ivfpq backend: faiss IVF with product-quantised codes, for indexes larger than RAM.

How it searches: a coarse quantizer splits the space into `n_lists` cells (k-means on a sample);
each vector is stored in its cell's inverted list as an `m`-byte product-quantised code of its
residual (`n_bits` bits per sub-quantiser). A query visits the `n_probes` nearest cells, ranks
their codes by approximate distance, and the `rerank` best candidates go back to the `Index`,
which re-ranks them exactly from the raw vectors, so reported distances are exact as for every
other backend. Only the recall is approximate.

What lives where: the raw vectors, norms and ids are memory-mapped files (`mapped = True`: the
`Index` keeps them in `facespace.index.mapped` scratch files and saves them as parts,
`facespace.index.store.write_index_parts`); the inverted lists are saved as faiss's own file in
the same parts folder and read back memory-mapped (`faiss.IO_FLAG_MMAP`). What stays in RAM: the
centroids, the PQ codebooks and one alive flag per row (faiss's precomputed l2 tables are never
built: `read_lists`). Adding to a loaded index first reads its lists into memory
(codes and ids: `m + 8` bytes per vector), since faiss cannot grow memory-mapped lists.

Training waits for enough vectors: below `4 * max(n_lists, 2**n_bits)` vectors the backend
searches exhaustively (exact). It trains on a sample (`train_size`, default about 30 vectors per
list) at the first search or save that finds enough vectors, then encodes every row; later adds
are encoded on the next search or save. Removed rows stay in the lists and are skipped during the
scan (an `IDSelectorBitmap` of the alive flags), so removing never rewrites the lists.

`facespace.index.sizing.plan_ivfpq` picks `n_lists`, `m` and `n_probes` from a memory budget and a
number of vectors; measured figures: `benchmarks/results/search_scale.md`.
"""

from __future__ import annotations

import shutil
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from facespace.errors import FacespaceError
from facespace.index.exact import ExactBackend, check_settings, positive_int

ADD_ROWS = 1 << 16  # rows encoded at a time
QUANTIZERS = ("flat", "hnsw")


def default_m(dim: int) -> int:
    """Sub-quantisers by default: 2 dimensions each (the largest divisor of `dim` up to `dim / 2`)."""
    return max([m for m in range(1, max(dim // 2, 1) + 1) if dim % m == 0])


_TABLES = threading.Lock()


def read_lists(path: Path):
    """faiss's index file at `path`, its inverted lists memory-mapped, without precomputed tables.

    faiss precomputes, for l2, a table of `n_lists * m * 2**n_bits` floats per index (134 MB for
    16,384 lists of 8-byte codes) when it trains or reads one; scanning with it was no faster here
    (10M real-like codes, 8,192 lists, 32 probes: 252 ms per 1,000 queries with it, 255 without),
    so the backend never builds it and the memory goes to more lists instead.
    """
    import faiss

    with _TABLES:  # faiss reads this limit from a process-wide variable while it reads the file
        before = faiss.cvar.precomputed_table_max_bytes
        faiss.cvar.precomputed_table_max_bytes = 0
        try:
            ivf = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
        finally:
            faiss.cvar.precomputed_table_max_bytes = before
    if isinstance(ivf, faiss.IndexIVFPQ):
        ivf.use_precomputed_table = -1
        ivf.precomputed_table.resize(0)
    return ivf


class IVFPQBackend:
    """Approximate search on faiss IVF-PQ codes, re-ranked exactly by the `Index`.

    Settings:
        n_lists: coarse cells (default 1024); about sqrt(n) is usual.
        m: sub-quantisers, bytes per code at 8 bits (default: dim / 2); must divide dim.
        n_bits: bits per sub-quantiser code (default 8).
        n_probes: cells visited per query (default 16), the recall/speed knob.
        rerank: candidates re-ranked exactly per query (default 100); at least `k` are.
        quantizer: "flat" (exact coarse assignment) or "hnsw" (a graph over the centroids:
            faster to add and search with many lists).
        train_size: vectors sampled for training (None: 30 per list, at least 10,000).
        threads: faiss threads while searching and adding (None: all cores).
        seed: seed of the training sample and of k-means.
    """

    name = "ivfpq"
    mapped = True  # the Index keeps this backend's rows in memory-mapped files

    def __init__(
        self,
        dim: int,
        metric: str,
        *,
        n_lists: int = 1024,
        m: int | None = None,
        n_bits: int = 8,
        n_probes: int = 16,
        rerank: int = 100,
        quantizer: str = "flat",
        train_size: int | None = None,
        threads: int | None = None,
        seed: int = 0,
    ) -> None:
        self.dim, self.metric = dim, metric
        self.n_lists = positive_int("n_lists", n_lists)
        self.m = default_m(dim) if m is None else positive_int("m", m)
        if dim % self.m:
            divisors = [v for v in range(1, dim + 1) if dim % v == 0]
            raise FacespaceError(f"m (sub-quantisers) must divide the dimension {dim}; got {self.m}; "
                                 f"choose one of: {', '.join(map(str, divisors))}")
        self.n_bits = positive_int("n_bits", n_bits)
        if self.n_bits > 16:
            raise FacespaceError(f"n_bits must be at most 16; got {self.n_bits} (8 is usual)")
        self.n_probes = positive_int("n_probes", n_probes)
        self.rerank = positive_int("rerank", rerank)
        if quantizer not in QUANTIZERS:
            raise FacespaceError(f"unknown quantizer {quantizer!r}; expected one of: {', '.join(QUANTIZERS)}")
        self.quantizer = quantizer
        self.train_size = None if train_size is None else positive_int("train_size", train_size)
        self.threads = None if threads is None else positive_int("threads", threads)
        self.seed = int(seed)
        self._ivf = None  # faiss.IndexIVFPQ once trained
        self._encoded = 0  # rows [0, _encoded) are in the lists
        self._lists_file = None  # open file of memory-mapped lists (a loaded index), else None
        self._selector: tuple[Any, ...] | None = None  # (rows, removals, selector, bitmap)
        self._removals = 0

    # ---- settings
    def settings(self) -> dict[str, Any]:
        return {"n_lists": self.n_lists, "m": self.m, "n_bits": self.n_bits, "n_probes": self.n_probes,
                "rerank": self.rerank, "quantizer": self.quantizer, "train_size": self.train_size,
                "threads": self.threads, "seed": self.seed}

    def configure(self, **settings: Any) -> None:
        check_settings(settings, {"n_probes": 0, "rerank": 0, "threads": 0}, self.name)
        for key in ("n_probes", "rerank"):
            if key in settings:
                setattr(self, key, positive_int(key, settings[key]))
        if "threads" in settings:
            self.threads = None if settings["threads"] is None else positive_int("threads", settings["threads"])

    @property
    def min_train(self) -> int:
        """Vectors needed before training; fewer are searched exhaustively."""
        return 4 * max(self.n_lists, 2**self.n_bits)

    @property
    def trained(self) -> bool:
        return self._ivf is not None

    @contextmanager
    def _omp(self) -> Iterator[None]:
        import faiss

        before = faiss.omp_get_max_threads()
        if self.threads is not None:
            faiss.omp_set_num_threads(self.threads)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(before)

    # ---- building
    def _new_ivf(self):
        import faiss

        metric = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT  # cosine: unit vectors
        coarse = faiss.IndexHNSWFlat(self.dim, 32, metric) if self.quantizer == "hnsw" else faiss.IndexFlat(self.dim, metric)
        ivf = faiss.IndexIVFPQ(coarse, self.dim, self.n_lists, self.m, self.n_bits, metric)
        coarse.this.disown()
        ivf.own_fields = True
        ivf.cp.niter, ivf.cp.seed, ivf.pq.cp.seed = 10, self.seed, self.seed
        ivf.use_precomputed_table = -1  # see `read_lists`
        return ivf

    def _train(self, data: np.ndarray, alive: np.ndarray) -> None:
        rows = np.flatnonzero(alive)
        size = self.train_size or max(30 * self.n_lists, 10_000)
        if len(rows) > size:
            rows = np.sort(np.random.default_rng(self.seed).choice(rows, size, replace=False))
        ivf = self._new_ivf()
        with self._omp():
            ivf.train(np.ascontiguousarray(data[rows], np.float32))
        self._ivf, self._encoded = ivf, 0

    def _writable(self) -> None:
        """Read memory-mapped lists into memory: faiss cannot add to mapped lists."""
        if self._lists_file is None:
            return
        import faiss

        old = self._ivf.invlists
        lists = faiss.ArrayInvertedLists(old.nlist, old.code_size)
        for k in range(old.nlist):
            size = old.list_size(k)
            if size:
                lists.add_entries(k, size, old.get_ids(k), old.get_codes(k))
        self._ivf.replace_invlists(lists, True)
        lists.this.disown()
        self._lists_file.close()
        self._lists_file = None

    def _sync(self, data: np.ndarray, alive: np.ndarray) -> None:
        """Train once there are enough vectors, then encode the rows not yet in the lists."""
        if self._ivf is None:
            if int(alive.sum()) < self.min_train:
                return
            self._train(data, alive)
        if self._encoded < len(data):
            self._writable()
            with self._omp():
                for start in range(self._encoded, len(data), ADD_ROWS):
                    stop = min(start + ADD_ROWS, len(data))
                    self._ivf.add_with_ids(np.ascontiguousarray(data[start:stop], np.float32), np.arange(start, stop))
            self._encoded = len(data)

    def add(self, data: np.ndarray, start: int, stop: int) -> None:
        """Nothing yet: rows are encoded on the next search or save (training may need them all)."""

    def remove(self, rows: np.ndarray) -> None:
        self._removals += 1  # the lists keep removed rows; the alive bitmap skips them

    # ---- searching
    def _alive_selector(self, alive: np.ndarray):
        import faiss

        if alive.all():
            return None
        key = (len(alive), self._removals)
        if self._selector is None or self._selector[:2] != key:
            bitmap = np.packbits(alive, bitorder="little")
            self._selector = (*key, faiss.IDSelectorBitmap(len(alive), faiss.swig_ptr(bitmap)), bitmap)
        return self._selector[2]

    def _params(self, n_probes: int, selector):
        import faiss

        params = faiss.SearchParametersIVF(nprobe=n_probes)
        if selector is not None:
            params.sel = selector
        if self.quantizer == "hnsw":  # the graph must return at least n_probes cells
            params.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(64, 2 * n_probes))
        return params

    def search(self, data: np.ndarray, alive: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
        """Rows `(n, c)` int64 of up to `c = max(rerank, k)` candidates per query (-1 = none)."""
        self._sync(data, alive)
        if self._ivf is None:  # too few vectors to train: every row, exactly
            exact = ExactBackend(self.dim, "l2" if self.metric == "l2" else "ip")
            small = np.array(data, np.float32)
            exact.add(small, 0, len(small))
            return exact.search(small, alive, queries, k)
        c = max(self.rerank, k)
        selector = self._alive_selector(alive)
        n_probes = min(self.n_probes, self.n_lists)
        with self._omp():
            _, rows = self._ivf.search(queries, c, params=self._params(n_probes, selector))
            # the probed cells may hold fewer than k live rows: visit every cell for those queries
            short = np.flatnonzero((rows >= 0).sum(1) < min(k, int(alive.sum())))
            if len(short) and n_probes < self.n_lists:
                _, wide = self._ivf.search(queries[short], c, params=self._params(self.n_lists, selector))
                rows[short] = wide
        return rows.astype(np.int64)

    # ---- files
    def parts(self, data: np.ndarray, alive: np.ndarray) -> dict[str, Callable[[Path], None]]:
        """Writers of this backend's parts (the lists), after training and encoding what is pending."""
        self._sync(data, alive)
        if self._ivf is None:
            return {}
        if self._lists_file is not None:  # mapped and unchanged: copy the file it was read from
            source = self._lists_file

            def copy(path: Path) -> None:
                source.seek(0)
                with open(path, "wb") as f:
                    shutil.copyfileobj(source, f, 1 << 24)

            return {"lists": copy}
        import faiss

        return {"lists": lambda path: faiss.write_index(self._ivf, str(path))}

    def restore_parts(self, files: dict[str, Path], data: np.ndarray, alive: np.ndarray) -> None:
        """Map the saved lists (read-only); an index saved before training has none."""
        if "lists" not in files:
            return
        import faiss

        ivf = read_lists(files["lists"])
        if not isinstance(ivf, faiss.IndexIVFPQ) or ivf.nlist != self.n_lists or ivf.pq.M != self.m or ivf.d != self.dim:
            raise FacespaceError("the index's lists do not match its settings (n_lists, m, dim); rebuild the index")
        if ivf.ntotal != len(data):
            raise FacespaceError(f"the index's lists hold {ivf.ntotal} vectors but it has {len(data)} rows; rebuild it")
        self._lists_file = open(files["lists"], "rb")  # kept open: saving copies from it even after a rename
        weakref.finalize(self, self._lists_file.close)
        self._ivf, self._encoded = ivf, ivf.ntotal

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def restore(self, state: dict[str, np.ndarray], data: np.ndarray, alive: np.ndarray) -> None:
        raise FacespaceError("an ivfpq index is saved with a parts folder; this file has none, rebuild the index")
