"""Faces from a request: an uploaded image (a face crop, or a whole photo with detection), or an
index item picked by id. Also the index's own pictures, by id only.

Uploads are size-checked, type-checked and decoded by Pillow through `facespace.data` with a pixel
limit; whole photos go through `facespace.photos.faces.find_faces`, the path every `--detect` takes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from facespace.data.images import read_image
from facespace.data.inputs import ALIGN_MAX_SIDE, align_arrays
from facespace.errors import FacespaceError
from facespace.protocol import is_aligning
from facespace.web.state import WebError, WebState
from facespace.web.schemas import Detection, FaceBox

# upload types refused outright (anything else is left to Pillow, which knows the real type)
IMAGE_TYPES = ("image/", "application/octet-stream", "")
PHOTO_SIDE = 480  # the longer side of the boxed photo sent back


def data_uri(image: np.ndarray) -> str:
    """A picture `(H, W, C)` float in [0, 1] or uint8 as a PNG data URI."""
    from facespace.reports.html import png_data_uri

    return png_data_uri(image)


def upload_name(upload: Any) -> str:
    """The uploaded file's name for messages (never used as a path)."""
    name = os.path.basename(str(getattr(upload, "filename", "") or "upload"))
    return name[:120] or "upload"


def read_upload(state: WebState, upload: Any) -> bytes:
    """The bytes of an uploaded image, checked for size and declared type.

    Raises:
        WebError: 415 for a declared non-image type, 413 over the size limit, 400 when empty.
    """
    name = upload_name(upload)
    ctype = (getattr(upload, "content_type", None) or "").split(";")[0].strip().lower()
    if not any(ctype.startswith(t) for t in IMAGE_TYPES if t) and ctype != "":
        raise WebError(415, f"{name} is {ctype}, not an image; upload a JPEG, PNG, WebP, BMP or TIFF file")
    data = upload.file.read(state.max_upload_bytes + 1)
    if len(data) > state.max_upload_bytes:
        raise WebError(413, f"{name} is larger than {state.max_upload_bytes / 2**20:.0f} MB; upload a smaller image")
    if not data:
        raise WebError(400, f"{name} is empty; choose an image file")
    return data


def has_file(upload: Any) -> bool:
    """True when the form field holds a file (browsers send an empty part for an empty input)."""
    return upload is not None and not isinstance(upload, str) and bool(getattr(upload, "filename", None) or
                                                                        getattr(upload, "size", 0))


@dataclass
class Faces:
    """Model inputs from one upload or one index item.

    Attributes:
        images: `(n, H, W, C)` float32 at the model's shape (n = 0: no face found).
        boxes: one `(x, y, w, h)` list per image, or None without detection.
        detection: what detection found (None without it).
        source: the upload's name or `#id`.
    """

    images: np.ndarray
    boxes: list[list[int] | None]
    detection: Detection | None
    source: str


def faces_from_upload(state: WebState, upload: Any, *, detect: bool) -> Faces:
    """Every face of an uploaded image: the image itself (a crop) or each face detection finds."""
    from facespace.data.images import decode_face, open_image

    data = read_upload(state, upload)
    name = upload_name(upload)
    size, _, channels = state.image_shape
    aligning = is_aligning(state.model)  # a model that cuts its own faces (dlib) cuts them here too
    if not detect and aligning:
        photo = read_image(data, max_pixels=state.max_pixels, max_side=ALIGN_MAX_SIDE, name=name)
        return Faces(align_arrays(state.model, [photo], names=[name]), [None], None, name)
    if not detect:
        arr, _ = decode_face(data, size, crop="lfw", grayscale=channels == 1, max_pixels=state.max_pixels, name=name)
        return Faces((arr.astype(np.float32) / 255.0)[None], [None], None, name)
    from facespace.photos.faces import READ_MAX_SIDE, draw_boxes, find_faces

    with open_image(data, max_pixels=state.max_pixels, name=name) as img:
        full = max(img.size)
    photo = read_image(data, max_pixels=state.max_pixels, max_side=READ_MAX_SIDE, name=name)
    scale = max(photo.shape[:2]) / full
    found = find_faces(photo, scale=scale, size=size, grayscale=channels == 1, align=state.model if aligning else None)
    boxes = [[int(v) for v in f.box] for f in found]
    detection = Detection(
        source=name,
        status="ok" if found else "no_face",
        photo=data_uri(draw_boxes(photo, found, scale=scale, max_side=PHOTO_SIDE)),
        faces=[FaceBox(face=k, box=b, score=float(f.score), crop=data_uri(f.crop)) for k, (f, b) in
               enumerate(zip(found, boxes))],
    )
    images = np.stack([f.crop for f in found]).astype(np.float32) if found else \
        np.zeros((0, size, size, channels), np.float32)
    return Faces(images, boxes, detection, name)


def index_face(state: WebState, id_: int, *, size: int | None = None, grayscale: bool | None = None) -> np.ndarray:
    """The index item's own picture, `(size, size, C)` float32, by id only.

    It comes from the file the index recorded, from the embedded set for "embedded" indexes, or
    else decoded from the stored code. Default size and channels: the model's.

    Raises:
        WebError: 404 for an unknown id or an item with no picture.
    """
    h, _, c = state.image_shape
    size = h if size is None else int(size)
    grayscale = (c == 1) if grayscale is None else grayscale
    meta = item_meta(state, id_)
    path = str(meta.get("path") or "")
    face = None
    if path.startswith("embedded:lfw_subset/"):
        k = path.rsplit("/", 1)[-1]
        images = state.embedded(size)
        if k.isdigit() and int(k) < len(images):
            face = images[int(k)]
    elif path and os.path.isfile(path) and is_aligning(state.model) and size == h:
        face = align_arrays(state.model, [read_image(path, max_side=ALIGN_MAX_SIDE)], names=[path])[0]
    elif path and os.path.isfile(path):
        from facespace.data.images import decode_face

        try:
            arr, _ = decode_face(path, size, crop="lfw", grayscale=grayscale, max_pixels=state.max_pixels)
            face = arr.astype(np.float32) / 255.0
        except FacespaceError:
            face = None  # the file changed since indexing; fall back to the code
    if face is None:
        face = decoded_item(state, id_, missing=f"index item {id_} has no image file ({path or 'none recorded'}) "
                                                "and the model has no decoder to draw its code")
        face = _resize(face, size)
    if grayscale and face.shape[-1] == 3:
        face = face.mean(axis=-1, keepdims=True)
    elif not grayscale and face.shape[-1] == 1:
        face = np.repeat(face, 3, axis=-1)
    return face.astype(np.float32)


def item_meta(state: WebState, id_: int) -> dict[str, Any]:
    """The index's metadata of one id; 404 when the index has no such id."""
    if id_ < 0 or id_ not in state.index:
        raise WebError(404, f"no face with id {id_} in the index (it holds {len(state.index)}); "
                            "GET /api/index lists the ids")
    return state.index.get_metadata([id_])[0]


def decoded_item(state: WebState, id_: int, *, missing: str | None = None) -> np.ndarray:
    """The index item's stored code decoded to a face, `(H, W, C)` float32 in [0, 1]."""
    from facespace.protocol import has_decoder

    item_meta(state, id_)
    if not has_decoder(state.model):
        raise WebError(409 if missing is None else 404, missing or (
            f"a {getattr(state.model, 'kind', '?')!r} model has no decoder, so codes cannot be turned back into "
            "faces; serve an autoencoder (pca, linear, conv, vae)"))
    return decode_codes(state, state.index.reconstruct([id_]))[0]


def decode_codes(state: WebState, codes: np.ndarray) -> np.ndarray:
    """`(n, d)` codes -> `(n, H, W, C)` faces in [0, 1] (through `facespace.pipelines.codes.decode` when present)."""
    with state.lock:
        try:
            from facespace.pipelines.codes import decode
        except ImportError:
            from facespace.protocol import check_codes

            z = check_codes(codes, int(state.model.code_size))
            return np.clip(state.model.decode(z), 0.0, 1.0).astype(np.float32)
        return np.asarray(decode(state.model, codes), np.float32)


def _resize(face: np.ndarray, size: int) -> np.ndarray:
    if face.shape[0] == size:
        return face
    from PIL import Image

    from facespace.grid import to_uint8

    pic = Image.fromarray(to_uint8(face)).resize((size, size), Image.Resampling.BILINEAR)
    out = np.asarray(pic, np.float32) / 255.0
    return out[..., :1] if face.shape[-1] == 1 else out


def one_face(state: WebState, upload: Any, id_: int | None, *, detect: bool, face: int = 0,
             slot: str = "face") -> tuple[np.ndarray | None, Detection | None]:
    """One face for a slot: from the upload (face number `face` when detection finds several) or
    from the index by id.

    Returns:
        `((1, H, W, C) float32 or None when no face was found, the detection or None)`.

    Raises:
        WebError: 422 when neither (or both) is given, 400 for a face number out of range.
    """
    if has_file(upload):
        if id_ is not None:
            raise WebError(422, f"give {slot} either as an upload or as an index id, not both")
        faces = faces_from_upload(state, upload, detect=detect)
        if len(faces.images) == 0:
            return None, faces.detection
        if not 0 <= face < len(faces.images):
            raise WebError(400, f"{faces.source} has {len(faces.images)} face(s); choose face 0 to "
                                f"{len(faces.images) - 1}, not {face}")
        if faces.detection is not None:
            faces.detection.chosen = face
        return faces.images[face : face + 1], faces.detection
    if id_ is None:
        raise WebError(422, f"give {slot}: upload an image or pick an index id")
    return index_face(state, id_)[None], None


def no_face_message(detections: list[Detection | None]) -> str:
    """'no face found in a.jpg, b.jpg; ...' for the detections that found none."""
    names = [d.source for d in detections if d is not None and d.status == "no_face"]
    return (f"no face found in {', '.join(names)}; use a photo where the face is upright and at least "
            "about 40 pixels wide, or untick 'detect faces' to use the image as a face crop")
