"""The contract every learned model honours, so that search, clustering, verification and
generation accept any model.

Images cross the public API as numpy arrays `(n, H, W, C)` float32 in [0, 1] (channels last);
codes as `(n, d)` float32. Torch tensors stay inside the models.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from facespace.errors import FacespaceError

# the distances codes are compared by (verification, galleries, clustering, indexes; an index also
# offers "ip", inner product, which is a similarity, not a distance)
METRICS = ("cosine", "l2")


@runtime_checkable
class Encoder(Protocol):
    """Anything that maps images to codes.

    Attributes:
        kind: registry name written into checkpoints ("pca", "conv", ...).
        config: the frozen dataclass the model is built from.
        image_shape: `(H, W, C)` the model takes.
        code_size: `d`, the length of a code.
    """

    kind: ClassVar[str]
    config: Any

    @property
    def image_shape(self) -> tuple[int, int, int]: ...

    @property
    def code_size(self) -> int: ...

    def encode(self, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """`(n, H, W, C)` float32 in [0, 1] -> `(n, d)` float32, `batch_size` images per pass."""
        ...


@runtime_checkable
class Autoencoder(Encoder, Protocol):
    """An encoder with a decoder: codes can be turned back into images."""

    def decode(self, codes: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """`(n, d)` float32 -> `(n, H, W, C)` float32 (not clipped), `batch_size` codes per pass."""
        ...


@runtime_checkable
class Aligning(Encoder, Protocol):
    """An encoder that cuts its own input from a photo (dlib's face chip): the data and photo layers
    call `locate` and `align` instead of their crops for such a model."""

    def locate(self, image: np.ndarray) -> tuple[int, int, int, int] | None:
        """`(H, W, C)` image -> the `(x, y, width, height)` box of the face it is about, or None."""
        ...

    def align(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """`(H, W, C)` image and a face box -> the model's input `image_shape` float32 in [0, 1]."""
        ...


def is_aligning(model: Any) -> bool:
    """True when `model` cuts its own inputs from photos (see `Aligning`); a wrapper of another model
    says whether it does through an `aligns` attribute."""
    if not (callable(getattr(model, "locate", None)) and callable(getattr(model, "align", None))):
        return False
    return bool(getattr(model, "aligns", True))


@runtime_checkable
class Trainable(Protocol):
    """What the generic training loop needs: a loss on a batch of tensors."""

    def loss(self, batch: Any) -> tuple[Any, dict[str, float]]:
        """Return `(scalar loss tensor, {metric name: float})` for one batch."""
        ...


def model_kind(model: Any) -> str:
    """What to call a model in a message: its registry kind, else its class name."""
    return str(getattr(model, "kind", None) or type(model).__name__)


def has_decoder(model: Any) -> bool:
    """True when `model` can turn codes back into images."""
    return callable(getattr(model, "decode", None))


def check_images(
    images: Any, image_shape: tuple[int, int, int], *, what: str = "images", finite: bool = True
) -> np.ndarray:
    """Return `images` as `(n, H, W, C)` float32, or raise saying what is wrong and what to do.

    A single `(H, W, C)` image is promoted to a batch of one. `finite=False` leaves NaN and inf for
    the caller to refuse image by image (`facespace.data.inputs.check_face_images` names each).

    Example:
        >>> check_images(np.zeros((4, 4, 1)), (4, 4, 1)).shape
        (1, 4, 4, 1)
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise FacespaceError(f"{what} must be (n, H, W, C) arrays; got shape {x.shape}")
    if tuple(x.shape[1:]) != tuple(image_shape):
        raise FacespaceError(
            f"{what} have shape {tuple(x.shape[1:])} but the model takes {tuple(image_shape)} (H, W, C); "
            f"load them with size={image_shape[0]} and grayscale={image_shape[2] == 1}, "
            "or pass image paths so facespace resizes them"
        )
    if finite and not np.isfinite(x).all():
        raise FacespaceError(f"{what} contain NaN or infinite values; clean or drop those images")
    return x


def check_codes(codes: Any, code_size: int) -> np.ndarray:
    """Return `codes` as `(n, d)` float32, or raise saying what is wrong."""
    z = np.asarray(codes, dtype=np.float32)
    if z.ndim == 1:
        z = z[None]
    if z.ndim != 2 or z.shape[1] != code_size:
        raise FacespaceError(f"codes must be (n, {code_size}) for this model; got shape {z.shape}")
    if not np.isfinite(z).all():
        raise FacespaceError("codes contain NaN or infinite values")
    return z
