"""What the web app serves from: the model, the index and the gallery (`WebState`), the request
limits, and `WebError` (an HTTP status with a message that says what to do)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from facespace.checkpoint import weights_hash
from facespace.errors import FacespaceError
from facespace.people.gallery.store import recorded_model

STATIC = Path(__file__).resolve().parent / "static"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # one uploaded image
MAX_FILES = 8  # images in one enrolment
MAX_JSON_BYTES = 1024 * 1024  # a JSON body (a code to decode): far more than any code needs
MAX_PIXELS = 40_000_000  # a 40-megapixel photo; more is refused as a possible decompression bomb


class WebError(FacespaceError):
    """An error with an HTTP status (404 unknown id, 409 unavailable feature, 413, 415...)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class WebState:
    """What the routes share: loaded once at startup.

    Attributes:
        model: the `Encoder` (an `Autoencoder` for reconstructions, morphs and decoding).
        index: the `facespace.index.Index` built with `model`.
        gallery: the gallery file (None: identify and enrol are unavailable).
        gallery_model: the model the gallery was built with, where that is not `model` (a gallery of
            faces-id or dlib beside an index of faces-ae); None: the gallery uses `model`.
        max_upload_bytes: the largest uploaded image.
        max_pixels: the largest uploaded image in pixels.
    """

    model: Any
    index: Any
    gallery: str | None = None
    gallery_model: Any = None
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_pixels: int = MAX_PIXELS
    lock: threading.RLock = field(default_factory=threading.RLock)
    clusters: dict[tuple, Any] = field(default_factory=dict)
    duplicates: dict[str, Any] = field(default_factory=dict)  # level -> the threshold learned for it
    _embedded: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.model.image_shape)  # type: ignore[return-value]

    def people(self) -> "WebState":
        """The state the people routes work in: the same, with the gallery's model as `model`."""
        return self if self.gallery_model is None else replace(self, model=self.gallery_model)

    @property
    def max_request_bytes(self) -> int:
        """A whole request: every image of an enrolment plus the form fields."""
        return self.max_upload_bytes * MAX_FILES + 64 * 1024

    def embedded(self, size: int) -> np.ndarray:
        """The embedded default's images at `size` (for indexes built from "embedded")."""
        with self.lock:
            if size not in self._embedded:
                from facespace.data.embedded import load_embedded

                self._embedded[size] = load_embedded(size).images
            return self._embedded[size]


def load_state(model: Any, index: Any, gallery: Any = None, *, gallery_model: Any = None, **limits: Any) -> WebState:
    """Resolve paths to objects and check that the model is the index's model. The people routes use
    the model an existing gallery records; a gallery not yet created gets `gallery_model` (None: the
    index's model)."""
    from facespace.index import Index, check_model
    from facespace.index.binding import index_model
    from facespace.models.registry import resolve_model

    if isinstance(index, (str, os.PathLike)):
        index = Index.load(index)
    if model is None:
        model = index_model(index)
    else:
        model = resolve_model(model)
        if index.model is not None:
            check_model(index, model)
        elif int(model.code_size) != index.dim:
            raise FacespaceError(f"the model makes codes of size {model.code_size} but the index holds codes of "
                                 f"size {index.dim}; pass the model the index was built with")
    if len(index) == 0:
        raise FacespaceError("the index is empty; build one with `facespace index build FOLDER --model MODEL --out I`")
    new_model, gallery_model = gallery_model, None
    if gallery is not None:
        gallery = str(gallery)
        if Path(gallery).is_dir():
            raise FacespaceError(f"{gallery} is a folder; pass a gallery file such as people.db")
        # an existing gallery answers with its own model; one of the index's model is not loaded again
        fingerprint = weights_hash(model)
        recorded = recorded_model(gallery, other_than=fingerprint)
        if recorded is not None:
            gallery_model = resolve_model(recorded)
        elif new_model is not None and not Path(gallery).exists():
            gallery_model = resolve_model(new_model)
            if weights_hash(gallery_model) == fingerprint:
                gallery_model = None
    return WebState(model=model, index=index, gallery=gallery, gallery_model=gallery_model, **limits)
