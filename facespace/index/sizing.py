"""Settings of an ivfpq index picked from a memory budget and the number of vectors.

What the budget pays for is what an ivfpq index keeps in memory while it is built and searched;
the raw vectors are not in it (they stay in memory-mapped files, read only to re-rank a few
candidates per query):

    lists       n * (m + 8)              a code of m bytes and an int64 id per vector
    alive       n                        one flag per vector
    centroids   n_lists * dim * 4        (+ about 300 bytes per list for an hnsw quantizer)
    working     64 MiB                   a batch being added, the training sample, queries

The plan takes n/1,000 lists rounded up to a power of two (at least sqrt(n), at most 16,384), the
largest `m` (bytes per code, 2 to 8 dimensions per sub-quantiser) that fits, probes
16 x cbrt(lists / 1,024) (16 at 1,024 lists, 25 at 4,096, 32 at 8,192, 40 at 16,384; at least
16) and re-ranks 200 candidates. On real-like codes with 8-byte codes
(benchmarks/results/search_scale.md): at 1M, 1,024 lists with 16 probes gave recall@10 0.963 and
2,048 lists with 16 probes only 0.933; at 10M, 4,096 lists needed 24 probes for 0.960 and 8,192
lists 32 probes for 0.959, and 16,384 lists with 40 probes scanned its lists 1.4x faster than
8,192 with 32. So the lists grow with n (at most about 1,000 vectors a list) and the probes much
more slowly than the lists. The cap keeps k-means on the training sample (30 vectors a list)
affordable on a few cores: its cost grows as lists squared. A budget that fits no `m` is refused
with the smallest budget that works.

Example:
    >>> plan = plan_ivfpq(10_000_000, 32, parse_memory("2GB"))
    >>> plan["settings"]["n_lists"], plan["settings"]["m"], plan["settings"]["n_probes"]
    (16384, 16, 40)
"""

from __future__ import annotations

import math
import re
from typing import Any

from facespace.errors import FacespaceError

WORKING = 64 * 2**20  # bytes for a batch being added, the training sample and query buffers
UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_memory(text: str | int) -> int:
    """Bytes of a memory size: `2GB`, `512MB`, `1.5GiB`, or a plain number of bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not found or found.group(2).upper() not in UNITS:
        raise FacespaceError(f"cannot read the memory size {text!r}; write it like 2GB, 512MB or 1.5GiB")
    return int(float(found.group(1)) * UNITS[found.group(2).upper()])


def format_bytes(n: float) -> str:
    """`2.1 GB`-style text (powers of 1000, as `parse_memory` reads them back)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{math.ceil(n / size * 10) / 10:g}{unit}"
    return f"{int(n)}B"


MAX_LISTS = 16384  # k-means on 30 vectors a list costs lists squared per iteration


def default_lists(n: int) -> int:
    """n/1,000 lists rounded up to a power of two, but about sqrt(n) where that is more; 16 to `MAX_LISTS`."""
    by_size = 2 ** math.ceil(math.log2(max(n / 1000, 1)))
    by_root = 2 ** round(math.log2(max(n, 1)) / 2)
    return int(min(MAX_LISTS, max(16, by_size, by_root)))


def default_probes(n_lists: int) -> int:
    """Lists probed per query: 16 x cbrt(n_lists / 1,024), at least 16 (all of them for 16 lists or fewer)."""
    return min(n_lists, max(16, round(16 * (n_lists / 1024) ** (1 / 3))))


def ivfpq_memory(n: int, dim: int, *, n_lists: int, m: int, quantizer: str = "flat") -> int:
    """Bytes an ivfpq index of `n` vectors keeps in memory (see the module docstring)."""
    centroids = n_lists * dim * 4 + (n_lists * 300 if quantizer == "hnsw" else 0)
    return n * (m + 8) + n + centroids + WORKING


def code_sizes(dim: int) -> list[int]:
    """Candidate sub-quantiser counts: divisors of `dim` with 2 to 8 dimensions each (or 1 for tiny dims)."""
    sizes = [m for m in range(1, dim + 1) if dim % m == 0 and 2 <= dim // m <= 8]
    return sizes or [1]


def plan_ivfpq(n: int, dim: int, memory: int) -> dict[str, Any]:
    """ivfpq settings for `n` vectors of `dim` within `memory` bytes.

    Args:
        n: vectors to index.
        dim: their dimension.
        memory: the budget in bytes (`parse_memory("2GB")`).

    Returns:
        `{"settings": {...}, "memory": estimated bytes, "raw": bytes of the raw vectors}`; the
        settings go straight to `Index(dim, metric, "ivfpq", **settings)`.

    Raises:
        FacespaceError: the budget is too small for any code size, naming the smallest that works.
    """
    if n < 1:
        raise FacespaceError("there are no vectors to index; give a codes folder with codes in it")
    n_lists = default_lists(n)
    quantizer = "hnsw" if n_lists >= 4096 else "flat"
    sizes = code_sizes(dim)
    fits = [m for m in sizes if ivfpq_memory(n, dim, n_lists=n_lists, m=m, quantizer=quantizer) <= memory]
    if not fits:
        least = ivfpq_memory(n, dim, n_lists=n_lists, m=min(sizes), quantizer=quantizer)
        raise FacespaceError(f"a memory budget of {format_bytes(memory)} is too small for {n:,} vectors of dimension "
                             f"{dim}; the smallest that works is --memory {format_bytes(least)}")
    m = max(fits)
    settings = {"n_lists": n_lists, "m": m, "n_bits": 8, "n_probes": default_probes(n_lists), "rerank": 200,
                "quantizer": quantizer}
    used = ivfpq_memory(n, dim, n_lists=n_lists, m=m, quantizer=quantizer)
    return {"settings": settings, "memory": used, "raw": n * dim * 4}
