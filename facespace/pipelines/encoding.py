"""Encode what a user points at: folders (recursive), image files or "embedded" -> one row per face
with its code, path, name and (with `detect`) box. `facespace encode` and `index duplicates` use it.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facespace.data.crops import RECORDED, resolve_crop
from facespace.data.folders import identities, scan_folder
from facespace.data.images import load_images
from facespace.data.inputs import align_arrays, aligned_images
from facespace.data.load import load_faces
from facespace.errors import FacespaceError
from facespace.photos.faces import model_crops
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


def encode_sources(
    net: Encoder,
    sources: list[str],
    *,
    detect: bool = False,
    detector: str = "auto",
    batch_size: int = 256,
    crop: Any = RECORDED,
    progress: Callable[[int, int], None] | None = None,
):
    """Codes of every face in `sources`, in order, with their paths, names and (with `detect`) boxes.

    Args:
        net: the model.
        sources: image folders (recursive), image files, or "embedded".
        detect: find the faces in each file as a whole photo (`facespace.photos.faces.crops_from_photos`):
            every face is one row with its box; photos without a face give no row.
        batch_size: images encoded at a time.
        crop: crop of image files without `detect` (as `load_faces`); "recorded": the model's own.
        progress: called with (done, total) as images are read and encoded.

    Returns:
        `(ExportedCodes, no_face, n_photos)`: the rows; the photos in which no face was found; how
        many images or photos were looked at.
    """
    aligning = is_aligning(net)  # a model that cuts its own faces from whole files (dlib)
    given_crop, crop = crop, resolve_crop(net, crop)
    size, _, channels = net.image_shape
    grey = channels == 1
    # (kind, payload, names): kind "set" for an already-loaded FaceSet, "files" for paths to read
    jobs: list[tuple[str, Any, list[str | None]]] = []
    loose: list[str] = []
    for src in sources:
        path = Path(src)
        if src == "embedded" or (path.is_dir() and not detect and not aligning):
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
            raise FacespaceError(f"{src}: no such file or folder; give image folders, image files or 'embedded'")
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
        elif not detect:
            images = (aligned_images(net, payload, crop=given_crop) if aligning
                      else load_images(payload, size=size, crop=crop, grayscale=grey))
            codes.append(_encode(net, images, batch_size, tick))
            srcs += [str(Path(p).resolve()) for p in payload]
            names += who
            boxes += [None] * len(payload)
            faces += [0] * len(payload)
        else:
            by_path = dict(zip(payload, who))
            for start in range(0, len(payload), CHUNK):
                part = payload[start : start + CHUNK]
                crops = model_crops(net, part, detect=True, detector=detector)
                tick(len(part))
                codes.append(_encode(net, crops.images, batch_size, lambda n: None))
                tick(len(part))
                srcs += [str(Path(s).resolve()) for s in crops.sources]
                names += [by_path[s] for s in crops.sources]
                boxes += crops.boxes
                faces += crops.faces
                no_face += crops.no_face
    z = np.concatenate(codes) if codes else np.zeros((0, int(net.code_size)), np.float32)
    n_photos = sum(len(p) for _, p, _ in jobs)
    return ExportedCodes(z, srcs, names, export_model_record(net), boxes, faces), no_face, n_photos
