"""Decode many images in worker processes, in chunks, with a progress bar on stderr."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from facespace.data.images import MAX_PIXELS, Crop, Source, decode_many
from facespace.errors import DataError

CHUNK = 64  # images per task: big enough to hide the inter-process cost, small for a smooth bar


@dataclass
class Decoded:
    """What a decoding run produced, in input order."""

    index: np.ndarray  # (k,) int64 positions (in the input order) of the images that decoded
    images: np.ndarray  # (k, size, size, C) uint8
    grey: np.ndarray  # (k,) bool: the file itself was grey
    errors: list[tuple[int, str]] = field(default_factory=list)  # (position, message) of the others


def default_workers() -> int:
    """The CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _context() -> mp.context.BaseContext:
    # fork where it exists (Linux): workers start in milliseconds and the user's script needs no
    # `if __name__ == "__main__":` guard; they only run Pillow and numpy, never torch. Elsewhere
    # (macOS, Windows) spawn, which needs that guard in scripts.
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def decode_chunks(chunks: Iterable[Sequence[tuple[int, Source, str | None]]], *, size: int, crop: Crop,
                  grayscale: bool, workers: int | None = None, max_pixels: int = MAX_PIXELS,
                  on_done: Callable[[int], None] | None = None) -> Decoded:
    """Decode chunks of `(position, path or bytes, name)` with `decode_many`, in parallel.

    Args:
        chunks: the work, possibly produced lazily (an archive being streamed).
        workers: processes; None for every CPU, 0 or 1 to decode in this process.
        on_done: called with the number of images in each finished chunk (for a progress bar).

    Returns:
        A `Decoded`, sorted by position.
    """
    workers = default_workers() if workers is None else int(workers)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, list]] = []

    def collect(result: tuple, n: int) -> None:
        parts.append(result)
        if on_done is not None:
            on_done(n)

    if workers <= 1:
        for chunk in chunks:
            collect(decode_many(chunk, size, crop, grayscale, max_pixels), len(chunk))
    else:
        pool = ProcessPoolExecutor(workers, mp_context=_context())
        pending: dict[Future, int] = {}
        try:
            for chunk in chunks:
                with warnings.catch_warnings():  # Python >= 3.12 warns about fork in threaded parents
                    warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
                    future = pool.submit(decode_many, list(chunk), size, crop, grayscale, max_pixels)
                pending[future] = len(chunk)
                if len(pending) >= 3 * workers:  # bound the memory held by a fast producer
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        collect(f.result(), pending.pop(f))
            for f in list(pending):
                collect(f.result(), pending.pop(f))
        except BrokenProcessPool as e:
            raise DataError(f"a decoding worker process died ({e}); out of memory? try workers=1") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    channels = 1 if grayscale else 3
    if not parts:
        return Decoded(np.zeros(0, np.int64), np.zeros((0, size, size, channels), np.uint8), np.zeros(0, bool))
    index = np.concatenate([p[0] for p in parts])
    order = np.argsort(index, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))  # where each decoded row goes in input order
    images = np.empty((len(index), size, size, channels), np.uint8)
    errors = sorted(e for p in parts for e in p[3])
    grey = np.concatenate([p[2] for p in parts])[order]
    start = 0
    while parts:  # fill in place, releasing each chunk as it is copied
        _, chunk_images, _, _ = parts.pop(0)
        images[rank[start:start + len(chunk_images)]] = chunk_images
        start += len(chunk_images)
    return Decoded(index=index[order], images=images, grey=grey, errors=errors)


def chunked(items: Iterable, n: int = CHUNK) -> Iterable[list]:
    """Lists of up to `n` consecutive items."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
