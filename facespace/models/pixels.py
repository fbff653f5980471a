"""The raw-pixel baseline as an `Encoder`: the code is the flattened image.

It has no weights, so it is never saved; name it `pixels:SIZE[:grey]` wherever a model is taken
(`facespace.models.registry.resolve_model`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from facespace.protocol import check_images


@dataclass(frozen=True)
class PixelConfig:
    size: int = 32  # image side in pixels
    channels: int = 3  # 1 (grey) or 3 (RGB)


class PixelEncoder:
    """The raw-pixel baseline as an `Encoder`: the code is the flattened image.

    Args:
        size: image side `H = W` in pixels.
        channels: 1 (grey) or 3 (RGB).

    Example:
        >>> PixelEncoder(size=4, channels=1).encode(np.zeros((2, 4, 4, 1), np.float32)).shape
        (2, 16)
    """

    kind = "pixels"

    def __init__(self, *, size: int = 32, channels: int = 3):
        self.config = PixelConfig(size=size, channels=channels)
        self.checkpoint_info: dict[str, Any] = {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.config.size, self.config.size, self.config.channels)

    @property
    def code_size(self) -> int:
        return self.config.size * self.config.size * self.config.channels

    def encode(self, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """`(n, H, W, C)` float32 -> `(n, H*W*C)` float32 (`batch_size` is accepted for the contract)."""
        x = check_images(images, self.image_shape)
        return x.reshape(len(x), -1).copy()
