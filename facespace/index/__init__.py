"""Nearest-neighbour search over codes: `Index` (faiss shape) with exact, LSH, HNSW and IVF-PQ
backends (ivfpq keeps its vectors on disk, memory-mapped; `sizing` picks its settings from a memory
budget), its file format, and the record of the model its vectors came from.

    >>> from facespace.index import Index                       # doctest: +SKIP
    >>> index = Index(32, metric="cosine", backend="hnsw")
    >>> index.add(codes, metadata=[{"path": p} for p in paths])
    >>> distances, ids = index.search(query_codes, k=10)        # (n, 10) each, padded inf / -1

Encoding a face set into an index is a pipeline: `facespace.pipelines.indexing.build_index`.

May import: the ground floor, `data`, `models`.
"""

from facespace.index.binding import check_model, model_record
from facespace.index.index import BACKENDS, METRICS, Index, IndexingError

__all__ = ["BACKENDS", "METRICS", "Index", "IndexingError", "check_model", "model_record"]
