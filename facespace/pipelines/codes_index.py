"""An index of exported codes, shard folders streamed so that the vectors need not fit in memory.

`build_codes_index` reads a codes file, or a shard folder written by `facespace encode --out
FOLDER/` one shard at a time (the next shard is read on a second thread while the current batch
is added), checks that every shard comes from the folder's model, and adds the codes in batches.
For `backend="ivfpq"` the settings come from a memory budget (`facespace.index.sizing.plan_ivfpq`)
unless given; the vectors go to memory-mapped files, so only the budget's share stays in memory.
The index is written only at the end, atomically: a failure on the way leaves no index at all.

Example:
    >>> index, plan = build_codes_index("codes/", backend="ivfpq", memory="2GB")   # doctest: +SKIP
    >>> index.save("faces.index")                                                  # doctest: +SKIP
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from facespace.index.index import Index, IndexingError
from facespace.index.sizing import parse_memory, plan_ivfpq
from facespace.pipelines.export.formats import ExportedCodes, ExportError, crc
from facespace.pipelines.export.read import finished_manifest, is_codes_dir, load_codes, load_npy

BATCH_BYTES = 32 * 2**20  # codes gathered before each add (an add scans the ids once)


def _same_model(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    key = "weights_hash" if a.get("weights_hash") or b.get("weights_hash") else "hash"
    return a.get(key) == b.get(key)


def shard_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """A finished shard folder's manifest (with the records of shards written since it was); an
    unfinished or damaged one is refused saying what to do."""
    return finished_manifest(folder)


def iter_shards(folder: str | os.PathLike) -> Iterator[ExportedCodes]:
    """The shards of a codes folder in order, each checked against the manifest and its model.

    The next shard is read on a second thread while the caller works on the current one.

    Raises:
        ExportError: an unfinished folder, a damaged shard, or shards of two different models.
    """
    folder = Path(folder)
    manifest = shard_manifest(folder)
    tags = sorted(manifest["shards"])
    reference = manifest.get("model")  # None in a hand-made folder: then the first shard's model

    def read(tag: str) -> ExportedCodes:
        entry = manifest["shards"][tag]
        part = load_npy(folder / entry["file"])
        if crc(part.codes) != entry["crc"] or len(part) != entry["rows"]:
            raise ExportError(f"{folder / entry['file']}: does not match the manifest (damaged or replaced); delete "
                              "it and its entry, or the folder, and re-run the encode command")
        return part

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(read, tags[0]) if tags else None
        for i, tag in enumerate(tags):
            part = pending.result()
            pending = pool.submit(read, tags[i + 1]) if i + 1 < len(tags) else None
            if i == 0 and reference is None:
                reference = part.model
            if not _same_model(part.model, reference):
                raise ExportError(f"{folder / manifest['shards'][tag]['file']}: made by another model "
                                  f"({(part.model or {}).get('kind')}) than the folder's "
                                  f"({(reference or {}).get('kind')}); codes of two models cannot be one index: "
                                  "encode the photos again with one model, into a new folder")
            yield part


def count_codes(path: str | os.PathLike) -> tuple[int, int]:
    """`(n, dim)` of a codes folder from its manifest and first shard, without reading every shard."""
    manifest = shard_manifest(path)
    n = sum(int(e["rows"]) for e in manifest["shards"].values())
    tags = sorted(manifest["shards"])
    dim = load_npy(Path(path) / manifest["shards"][tags[0]]["file"]).dim if tags else 0
    return n, dim


def build_codes_index(
    codes: str | os.PathLike,
    *,
    metric: str = "cosine",
    backend: str = "exact",
    memory: str | int | None = None,
    progress: Callable[[int, int], None] | None = None,
    **settings: Any,
) -> tuple[Index, dict[str, Any] | None]:
    """Index exported codes (a file, or a shard folder read shard by shard).

    Args:
        codes: a codes file (.npy/.csv/.parquet) or a shard folder from `facespace encode --out FOLDER/`.
        metric: "cosine", "l2" or "ip".
        backend: "exact", "lsh", "hnsw" or "ivfpq".
        memory: ivfpq only: the memory budget ("2GB", or bytes) its settings are picked for;
            None: the most accurate settings whatever their memory.
        progress: called with (codes added, codes in all) after each batch.
        **settings: backend settings; for ivfpq they override the planned ones.

    Returns:
        `(index, plan)`: the index (not yet saved; it records the codes' model) and, for ivfpq,
        the plan (`plan_ivfpq`'s settings, estimated memory and raw size), else None.

    Raises:
        IndexingError: no codes, or `memory` with a backend other than ivfpq, or a budget too
            small (naming the smallest that works).
        ExportError: a damaged or unfinished folder, or codes of two models in it.
    """
    folder = is_codes_dir(codes)
    if memory is not None and backend != "ivfpq":
        raise IndexingError(f"--memory picks the settings of the ivfpq backend; use --backend ivfpq (not {backend}), "
                            "or leave --memory out")
    whole = None if folder else load_codes(codes)
    n, dim = count_codes(codes) if folder else (len(whole), whole.dim)
    if n == 0:
        raise IndexingError(f"{codes} holds no codes; export some with `facespace encode`")
    plan = None
    if backend == "ivfpq":
        budget = parse_memory(memory) if memory is not None else 2**62
        plan = plan_ivfpq(n, dim, budget)
        settings = {**plan["settings"], **settings}
    index = Index(dim, metric=metric, backend=backend, **settings)
    parts = iter_shards(codes) if folder else iter([whole])
    batch: list[ExportedCodes] = []
    done, rows_per_batch = 0, max(1, BATCH_BYTES // (4 * dim))
    models = []
    for part in parts:
        models = models or [part.model]
        batch.append(part)
        if sum(len(p) for p in batch) >= rows_per_batch:
            done += _add(index, batch)
            batch = []
            if progress is not None:
                progress(done, n)
    done += _add(index, batch)
    if progress is not None:
        progress(done, n)
    index.model = (shard_manifest(codes).get("model") or (models or [None])[0]) if folder else whole.model
    return index, plan


def _add(index: Index, batch: list[ExportedCodes]) -> int:
    if not batch:
        return 0
    z = np.concatenate([p.codes for p in batch]) if len(batch) > 1 else batch[0].codes
    index.add(z, metadata=[m for p in batch for m in p.metadata()])
    return len(z)
