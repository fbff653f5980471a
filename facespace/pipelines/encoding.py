"""Encode what a user points at: folders (recursive), image files, lists of them, URLs (through
fsspec, `facespace.data.sources`) or "embedded" -> one row per face with its code, path (a URL stays
a URL), name and (with `detect`) box. `facespace encode` and `index duplicates` use it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facespace.data.crops import RECORDED, resolve_crop
from facespace.data.folders import identities, scan_folder
from facespace.data.images import load_images
from facespace.data.inputs import align_arrays, aligned_images
from facespace.data.load import load_faces
from facespace.data.sources import absolute, is_list_file, read_list, url_images
from facespace.data.urls import is_url
from facespace.errors import DataError
from facespace.photos.faces import model_crops
from facespace.models.registry import resolve_model
from facespace.pipelines.codes import encode
from facespace.pipelines.export.formats import ExportedCodes, export_model_record
from facespace.protocol import Encoder, is_aligning

_LFW_NAME = re.compile(r"^(.+)_\d{4}$")
CHUNK = 64  # photos searched for faces between two progress updates


def _name_of_file(path: str) -> str | None:
    """`.../George_W_Bush_0001.jpg` -> `George_W_Bush`; a loose photo has no known identity."""
    m = _LFW_NAME.match(Path(path).stem)
    return m.group(1) if m else None


def _encode(net: Encoder, images: np.ndarray, batch_size: int, tick: Callable[[int], None]) -> np.ndarray:
    codes = np.zeros((len(images), int(net.code_size)), np.float32)
    for start in range(0, len(images), batch_size):
        stop = min(start + batch_size, len(images))
        codes[start:stop] = encode(net, images[start:stop], batch_size=batch_size)
        tick(stop - start)
    return codes


def chunk_codes(net: Encoder, part: list[str], *, detect: bool, detector: str, crop: Any, batch_size: int):
    """Codes of one chunk of image files: `(codes, sources, faces, boxes, no_face)`, one row per face."""
    if detect:
        crops = model_crops(net, part, detect=True, detector=detector)
        z = _encode(net, crops.images, batch_size, lambda n: None)
        return z, list(crops.sources), list(crops.faces), list(crops.boxes), list(crops.no_face)
    z = _encode(net, aligned_images(net, part, crop=crop), batch_size, lambda n: None)
    return z, list(part), [0] * len(part), [None] * len(part), []


_WORKER: dict[str, Any] = {}


def _start_worker(spec: str) -> None:
    _WORKER["net"] = resolve_model(spec)


def _worker_chunk(job: tuple) -> tuple:
    part, options = job
    return chunk_codes(_WORKER["net"], part, **options)


def model_spec(net: Encoder) -> str | None:
    """What names `net` so another process can load it: its built-in name or checkpoint path (None
    for a model that lives only in this process)."""
    info = getattr(net, "checkpoint_info", None) or {}
    return info.get("builtin") or info.get("path")


def default_workers(net: Encoder) -> int:
    """Processes `encode_sources` uses by default: every core for a model that runs one thread per
    process (dlib's encoder), one for torch models (torch spreads over the cores itself)."""
    return max(1, os.cpu_count() or 1) if is_aligning(net) and model_spec(net) else 1


def _map_chunks(net: Encoder, chunks: list[list[str]], *, workers: int, **options: Any):
    """`chunk_codes` of every chunk, in order: here, or in `workers` processes that each load the model once."""
    spec = model_spec(net)
    if workers <= 1 or len(chunks) <= 1 or spec is None:
        for part in chunks:
            yield chunk_codes(net, part, **options)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=mp.get_context("spawn"),
                             initializer=_start_worker, initargs=(spec,)) as pool:
        yield from pool.map(_worker_chunk, [(part, options) for part in chunks])


def encode_sources(
    net: Encoder,
    sources: list[str],
    *,
    detect: bool = False,
    detector: str = "auto",
    batch_size: int = 256,
    crop: Any = RECORDED,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
):
    """Codes of every face in `sources`, in order, with their paths, names and (with `detect`) boxes.

    Args:
        net: the model.
        sources: image folders (recursive), image files, `.txt` lists of image paths or URLs (one a
            line), URLs of images or folders (read through fsspec: `facespace.data.sources`), or
            "embedded".
        detect: find the faces in each file as a whole photo (`facespace.photos.faces.crops_from_photos`):
            every face is one row with its box; photos without a face give no row.
        batch_size: images encoded at a time.
        crop: crop of image files without `detect` (as `load_faces`); "recorded": the model's own.
        progress: called with (done, total) as images are read and encoded.
        workers: processes that read, align and encode files in chunks (None: `default_workers`);
            the codes are the same, in the same order, for any number.

    Returns:
        `(ExportedCodes, no_face, n_photos)`: the rows; the photos in which no face was found; how
        many images or photos were looked at.
    """
    aligning = is_aligning(net)  # a model that cuts its own faces from whole files (dlib)
    workers = default_workers(net) if workers is None else max(1, int(workers))
    given_crop, crop = crop, resolve_crop(net, crop)
    size, _, channels = net.image_shape
    grey = channels == 1
    # (kind, payload, names): kind "set" for an already-loaded FaceSet, "files" for paths to read
    jobs: list[tuple[str, Any, list[str | None]]] = []
    loose: list[str] = []
    for src in sources:
        path = Path(src)
        if is_list_file(src):  # one image path or URL a line, read where they lie
            loose += read_list(src)
        elif is_url(src):  # an image, or a folder of them, through fsspec
            urls, rel = url_images(src)
            who = identities(rel) if rel is not None else None
            if rel is None:
                loose += urls
            else:
                jobs.append(("files", urls, list(who) if who is not None else [None] * len(urls)))
        elif src == "embedded" or (path.is_dir() and not detect and not aligning):
            if aligning:  # the embedded faces are small crops: read at the model's side, aligned by it
                faces = load_faces(src, size=size, crop=None, grayscale=False, progress=False)
                faces = dataclasses.replace(faces, images=align_arrays(net, faces.images, crop=given_crop))
            else:
                faces = load_faces(src, size=size, crop=crop, grayscale=grey, progress=False)
            names = list(faces.names) if faces.names is not None else [None] * len(faces)
            jobs.append(("set", faces, names))
        elif path.is_dir():
            rel = [e.relpath for e in scan_folder(path)]
            who = identities(rel)
            jobs.append(("files", [str(path / r) for r in rel], list(who) if who is not None else [None] * len(rel)))
        elif path.is_file():
            loose.append(src)
        else:
            raise DataError(f"{src}: no such file or folder; give image folders, image files, a .txt list of them, "
                            "URLs or 'embedded'")
    if loose:
        jobs.append(("files", loose, [_name_of_file(p) for p in loose]))
    total = sum(len(p) for _, p, _ in jobs) * (2 if detect else 1)
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    codes, srcs, names, boxes, faces, no_face = [], [], [], [], [], []
    for kind, payload, who in jobs:
        if kind == "set":
            codes.append(_encode(net, np.asarray(payload.images), batch_size, tick))
            srcs += [str(p) for p in payload.paths]
            names += [None if n is None else str(n) for n in who]
            boxes += [None] * len(payload)
            faces += [0] * len(payload)
        elif not detect and not aligning:
            images = load_images(payload, size=size, crop=crop, grayscale=grey)
            codes.append(_encode(net, images, batch_size, tick))
            srcs += [absolute(p) for p in payload]
            names += who
            boxes += [None] * len(payload)
            faces += [0] * len(payload)
        else:  # whole photos, or a model that aligns its own faces: in chunks, over `workers` processes
            by_path = dict(zip(payload, who))
            chunks = [payload[i : i + CHUNK] for i in range(0, len(payload), CHUNK)]
            file_crop = given_crop if aligning else crop
            for part, (z, part_srcs, part_faces, part_boxes, part_none) in zip(
                    chunks, _map_chunks(net, chunks, detect=detect, detector=detector, crop=file_crop,
                                        batch_size=batch_size, workers=workers)):
                tick(len(part) * (2 if detect else 1))
                codes.append(z)
                srcs += [absolute(s) for s in part_srcs]
                names += [by_path[s] for s in part_srcs]
                boxes += part_boxes
                faces += part_faces
                no_face += part_none
    z = np.concatenate(codes) if codes else np.zeros((0, int(net.code_size)), np.float32)
    n_photos = sum(len(p) for _, p, _ in jobs)
    return ExportedCodes(z, srcs, names, export_model_record(net), boxes, faces), no_face, n_photos
