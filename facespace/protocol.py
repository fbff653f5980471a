"""The contract every learned model honours, so that search, clustering, verification and
generation accept any model.

Images cross the public API as numpy arrays `(n, H, W, C)` float32 in [0, 1] (channels last);
codes as `(n, d)` float32. Torch tensors stay inside the models.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


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

    def encode(self, images: np.ndarray) -> np.ndarray:
        """`(n, H, W, C)` float32 in [0, 1] -> `(n, d)` float32."""
        ...


@runtime_checkable
class Autoencoder(Encoder, Protocol):
    """An encoder with a decoder: codes can be turned back into images."""

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """`(n, d)` float32 -> `(n, H, W, C)` float32 (not clipped)."""
        ...


@runtime_checkable
class Trainable(Protocol):
    """What the generic training loop needs: a loss on a batch of tensors."""

    def loss(self, batch: Any) -> tuple[Any, dict[str, float]]:
        """Return `(scalar loss tensor, {metric name: float})` for one batch."""
        ...


def has_decoder(model: Any) -> bool:
    """True when `model` can turn codes back into images."""
    return callable(getattr(model, "decode", None))
