"""`load_faces`: one verb for every source of faces, decoded in parallel once and cached."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from facespace.data import cache as cache_mod
from facespace.data.embedded import load_embedded
from facespace.data.faceset import FaceSet
from facespace.data.folders import identities, scan_folder
from facespace.data.images import Crop, check_crop, check_size
from facespace.data.lfw import is_archive, iter_archive, resolve_sklearn_home
from facespace.data.parallel import Decoded, chunked, decode_chunks
from facespace.errors import DataError, DataWarning

FIRST_FEW = 3  # how many bad files a warning names




def load_faces(source: str | os.PathLike, *, size: int = 32, crop: Crop = "lfw", grayscale: bool = False,
               strict: bool = False, cache: bool = True, workers: int | None = None,
               progress: bool = True) -> FaceSet:
    """Load a set of face images from a folder, an LFW archive or the embedded default.

    Args:
        source: one of
            - `"embedded"`: scikit-image's `lfw_subset()` (200 grey 25x25 crops; the first 100 are
              faces, `labels["is_face"]`; no names);
            - an LFW folder `<root>/<Name>/<Name>_NNNN.jpg` (lfw, lfw-funneled, lfw-deepfunneled);
            - the official `.tgz` (read straight from the archive, nothing unpacked);
            - an LFWcrop-style flat folder `faces/<Name>_NNNN.pgm`;
            - any image folder, recursive (jpg, png, pgm, bmp, webp, tiff), identity from the
              top-level sub-folder when there is one;
            - scikit-learn's `fetch_lfw_people` cache (`lfw_home`, or the data home holding it).
        size: output side in pixels.
        crop: "lfw" (the central 90x90 of 250x250 LFW images, `img[80:-80, 80:-80]`; other sizes
            are used whole), None, or a box `(top, left, bottom, right)`; see `images.crop_box`.
            The box (or whole image) is resized to a square: give a square box for non-square photos.
        grayscale: one channel instead of three (grey files are otherwise replicated to 3).
        strict: raise on an unreadable image instead of skipping it with a warning.
        cache: reuse and store decoded images under `$FACESPACE_CACHE` (default
            `~/.cache/facespace`); a reuse is a memory-mapped read.
        workers: decoding processes; None for every CPU (sets under 256 images decode in this
            process, where a pool would cost more than it saves), 1 to decode in this process.
        progress: show a progress bar on stderr while decoding.

    Returns:
        A FaceSet: `images (n, size, size, C)` float32 in [0, 1] (C = 1 if grayscale else 3),
        `names (n,)` str or None, `paths (n,)` str (`archive.tgz::member` for archives). From the
        cache, `images` is a copy-on-write memory map: pages are read on first use, and writes
        stay private to the process (the cache file is never changed).

    Raises:
        DataError: a missing path, an empty folder, an unreadable archive, a bad crop, or (with
            `strict=True`) any image that cannot be decoded.

    Warns:
        DataWarning: once, counting the images skipped as unreadable and naming the first few;
            once, counting the grey images replicated into a colour set.

    Example:
        >>> faces = load_faces("embedded", size=32)
        >>> faces.images.shape, int(faces.labels["is_face"].sum())
        ((200, 32, 32, 3), 100)
    """
    check_size(size)
    check_crop(crop)  # a bad crop spec fails now, not once per image
    if isinstance(source, str) and source == "embedded":
        return load_embedded(size, crop=crop, grayscale=grayscale)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{source}: no such file or folder; give an image folder, an LFW .tgz, "
                        f"a scikit-learn lfw_home, or 'embedded'")
    params = {"size": int(size), "crop": crop if crop is None or isinstance(crop, str) else list(crop),
              "grayscale": bool(grayscale)}
    if path.is_file():
        if not is_archive(path):
            raise DataError(f"{path}: a single file; give a folder of images, an LFW archive "
                            f"(.tgz, .tar.gz, .tar) or 'embedded'")
        return _load_archive(path.resolve(), params, strict, cache, workers, progress)
    home = resolve_sklearn_home(path)
    return _load_folder((home or path).resolve(), params, strict, cache, workers, progress)


def cache_entry(source: str | os.PathLike, *, size: int = 32, crop: Crop = "lfw",
                grayscale: bool = False) -> Path | None:
    """The `.npy` cache file `load_faces` uses for these arguments (it may not exist yet), or None
    for sources that are not cached (the embedded set)."""
    if isinstance(source, str) and source == "embedded":
        return None
    path = Path(source).expanduser()
    params = {"size": int(size), "crop": crop if crop is None or isinstance(crop, str) else list(crop),
              "grayscale": bool(grayscale)}
    if path.is_file():
        return _archive_entry(path.resolve(), params).with_suffix(".npy")
    root = (resolve_sklearn_home(path) or path).resolve()
    return cache_mod.entry_path({"kind": "folder", "source": str(root), **params},
                                _content_lines(scan_folder(root))).with_suffix(".npy")


def _content_lines(entries: list) -> Iterator[str]:
    return (f"{e.relpath}\t{e.size}\t{e.mtime_ns}" for e in entries)


def _archive_entry(path: Path, params: dict[str, Any]) -> Path:
    st = path.stat()
    return cache_mod.entry_path({"kind": "archive", "source": str(path), **params},
                                [f"{st.st_size}\t{st.st_mtime_ns}"])


def _load_folder(root: Path, params: dict[str, Any], strict: bool, cache: bool, workers: int | None,
                 progress: bool) -> FaceSet:
    entries = scan_folder(root, strict=strict)
    base = cache_mod.entry_path({"kind": "folder", "source": str(root), **params}, _content_lines(entries))
    if cache and (hit := cache_mod.read_entry(base)) is not None:
        return _from_cache(hit, root, strict)
    items = [(i, str(root / e.relpath), None) for i, e in enumerate(entries)]
    with _progress_bar(progress, len(items), f"decoding {len(items):,} images") as advance:
        decoded = decode_chunks(chunked(items), size=params["size"], crop=params["crop"],
                                grayscale=params["grayscale"], workers=_workers(workers, len(items)),
                                on_done=advance)
    relpaths = [e.relpath for e in entries]
    paths = [str(root / r) for r in relpaths]
    return _finish(decoded, relpaths, paths, str(root), base if cache else None, strict)


def _load_archive(path: Path, params: dict[str, Any], strict: bool, cache: bool, workers: int | None,
                  progress: bool) -> FaceSet:
    base = _archive_entry(path, params)
    if cache and (hit := cache_mod.read_entry(base)) is not None:
        return _from_cache(hit, path, strict)
    members: list[str] = []
    total = path.stat().st_size

    with _progress_bar(progress, total, f"reading {path.name}", unit_bytes=True) as advance:
        read = [0]

        def on_bytes(position: int) -> None:
            advance(position - read[0])
            read[0] = position

        def items() -> Iterator[tuple[int, bytes, str]]:
            for name, data in iter_archive(path, on_bytes):
                members.append(name)
                yield len(members) - 1, data, f"{path}::{name}"

        decoded = decode_chunks(chunked(items()), size=params["size"], crop=params["crop"],
                                grayscale=params["grayscale"], workers=workers)
    if not members:
        raise DataError(f"{path}: the archive holds no images (jpg, png, pgm, bmp, webp, tiff)")
    return _finish(decoded, members, [f"{path}::{m}" for m in members], str(path),
                   base if cache else None, strict)


def _workers(workers: int | None, n: int) -> int | None:
    # a pool costs a fraction of a second to start: not worth it for a handful of images
    return 1 if workers is None and n < 256 else workers


def _finish(decoded: Decoded, relpaths: list[str], paths: list[str], source: str, base: Path | None,
            strict: bool) -> FaceSet:
    """Assemble the FaceSet, store it in the cache, and report skipped or grey images."""
    n = len(paths)
    errors = [(paths[i], msg) for i, msg in decoded.errors]
    if len(decoded.index) == 0:
        raise DataError(f"{source}: none of the {n} images could be read; the first: {errors[0][1]}")
    keep = decoded.index
    all_names = identities(relpaths)
    images = decoded.images.astype(np.float32)
    images /= np.float32(255.0)
    meta = {
        "source": source,
        "paths": [paths[i] for i in keep],
        "names": None if all_names is None else all_names[keep].tolist(),
        "labels": {},
        "skipped": errors,
        "n_grey": int(decoded.grey.sum()),
        "first_grey": [paths[i] for i in keep[decoded.grey][:FIRST_FEW]],
    }
    # strict: fail before anything is written; a lenient load is cached with its skipped list
    _report(meta, strict, len(keep), images.shape[-1])
    if base is not None:
        cache_mod.write_entry(base, images, meta)
    return FaceSet(images=images, names=None if all_names is None else all_names[keep],
                   paths=np.array(meta["paths"]), source=source)


def _from_cache(hit: tuple[np.ndarray, dict[str, Any]], source: Path, strict: bool) -> FaceSet:
    images, meta = hit
    _report(meta, strict, len(images), images.shape[-1])
    return FaceSet(images=images, names=None if meta["names"] is None else np.array(meta["names"]),
                   paths=np.array(meta["paths"]), source=meta["source"],
                   labels=cache_mod.decode_labels(meta["labels"]))


def _report(meta: dict[str, Any], strict: bool, n_ok: int, channels: int) -> None:
    skipped = meta["skipped"]
    if skipped:
        first = "; ".join(msg for _, msg in skipped[:FIRST_FEW])
        total = n_ok + len(skipped)
        if strict:
            raise DataError(f"{len(skipped)} of {total} images in {meta['source']} cannot be read "
                            f"(strict=True); first: {first}; remove or fix them, or pass strict=False to skip them")
        warnings.warn(f"skipped {len(skipped)} of {total} images in {meta['source']} that cannot be read; "
                      f"first: {first}; pass strict=True to make this an error", DataWarning, stacklevel=5)
    n_grey = meta["n_grey"]
    if channels == 3 and 0 < n_grey < n_ok:
        warnings.warn(f"{n_grey} of {n_ok} images in {meta['source']} are grey and were replicated to 3 "
                      f"channels (first: {', '.join(meta['first_grey'])}); pass grayscale=True for one "
                      f"channel", DataWarning, stacklevel=5)


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, description: str,
                  unit_bytes: bool = False) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields `advance(k)`."""
    if not enabled:
        yield lambda k: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    counter = DownloadColumn() if unit_bytes else MofNCompleteColumn()
    with Progress(TextColumn("{task.description}"), BarColumn(), counter, TimeElapsedColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda k: bar.advance(task, k)
        bar.update(task, completed=total)


def load_training_faces(data: Any, *, size: int = 32, grayscale: bool = False, crop: str = "lfw", progress: bool = True):
    """A FaceSet from a FaceSet, an `(n, H, W, C)` array, or a source for `load_faces`."""
    if isinstance(data, FaceSet):
        return data
    if isinstance(data, (str, os.PathLike)):
        return load_faces(data, size=size, crop=crop, grayscale=grayscale, progress=progress)
    x = np.asarray(data, dtype=np.float32)
    if x.ndim != 4:
        raise DataError(f"training images must be (n, H, W, C) float32 arrays; got shape {x.shape}")
    n = len(x)
    return FaceSet(images=x, names=None, paths=np.array([f"array[{i}]" for i in range(n)]), source="array")
