"""Nearest-neighbour search over codes: `Index` (faiss shape) with exact, LSH and HNSW backends.

    >>> from facespace.index import Index                       # doctest: +SKIP
    >>> index = Index(32, metric="cosine", backend="hnsw")
    >>> index.add(codes, metadata=[{"path": p} for p in paths])
    >>> distances, ids = index.search(query_codes, k=10)        # (n, 10) each, padded inf / -1
"""

from facespace.index.build import build_index, check_model, model_record
from facespace.index.index import BACKENDS, METRICS, Index, IndexingError

__all__ = ["BACKENDS", "METRICS", "Index", "IndexingError", "build_index", "check_model", "model_record"]
