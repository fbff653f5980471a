"""A decoder for identity codes: the frozen identity model is the encoder, a small network draws a face.

Identity models (dlib's 128-d ResNet) turn a face into numbers that say who it is, and nothing turns
the numbers back. `IdentityAutoencoder` pairs the frozen encoder (named in its config, loaded by
name, e.g. "dlib") with a convolutional decoder trained on LFW to draw the aligned face, 64x64, from
its code. `decode` returns the drawing at the encoder's input side (bilinear upsampling), so
`decode`, `morph`, `explain` and `reconstruct` work with identity codes as with any autoencoder.
Only the decoder's weights are saved; the encoder comes from its own package.

Example:
    >>> ae = IdentityAutoencoder(IdentityDecoderConfig(encoder="dlib"))        # doctest: +SKIP
    >>> ae.decode(np.zeros((1, 128), np.float32)).shape                        # doctest: +SKIP
    (1, 150, 150, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facespace.errors import FacespaceError
from facespace.models.base import TorchAutoencoder
from facespace.models.registry import load_model, register_model, resolve_model
from facespace.protocol import is_aligning


@dataclass(frozen=True)
class IdentityDecoderConfig:
    encoder: str = "dlib"  # the frozen identity model, by the name load_model knows
    code_size: int = 128  # length of the encoder's codes
    size: int = 64  # side of the face the decoder draws
    out_size: int = 150  # side decode returns it at: the encoder's input side
    channels: int = 3  # RGB
    width: int = 24  # channels of the last stage; x2, x4, x8 going up to the 4x4 start


def _stage(cin: int, cout: int) -> list[nn.Module]:
    """`(B, cin, s, s) -> (B, cout, 2s, 2s)`: nearest upsampling and two 3x3 convolutions."""
    return [nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]


@register_model
class IdentityAutoencoder(TorchAutoencoder):
    """A frozen identity encoder (by name) and a trained decoder of its codes.

    Args:
        config: an `IdentityDecoderConfig`.
        encoder: the encoder object, when already loaded (default: `load_model(config.encoder)` on
            first use).
    """

    kind = "identity-ae"
    Config = IdentityDecoderConfig

    def __init__(self, config: IdentityDecoderConfig, encoder: Any = None):
        super().__init__(config)
        if config.size < 16 or config.size & (config.size - 1):
            raise FacespaceError(f"size {config.size} must be a power of two >= 16, e.g. 64")
        w = config.width
        stages = int(np.log2(config.size // 4))
        chans = [w * 2 ** (stages - i) for i in range(stages + 1)]  # e.g. 192 96 48 24 for 64 px
        self.start = nn.Linear(config.code_size, chans[0] * 16)
        layers: list[nn.Module] = []
        for i in range(stages):
            layers += _stage(chans[i], chans[i + 1])
        layers += [nn.Conv2d(chans[-1], config.channels, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        self._chans0 = chans[0]
        self._encoder = encoder

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = resolve_model(self.config.encoder)
        return self._encoder

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.config.out_size, self.config.out_size, self.config.channels)

    def encode(self, images: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """`(n, out_size, out_size, 3)` aligned faces -> `(n, code_size)` codes of the frozen encoder."""
        return self.encoder.encode(images, batch_size=batch_size)

    @property
    def min_face_side(self) -> int | None:
        """The encoder's smallest full-resolution face, where it says (the quality check's "too small")."""
        return getattr(self.encoder, "min_face_side", None)

    @property
    def aligns(self) -> bool:
        """Whether the encoder cuts its own faces from photos (dlib does)."""
        return is_aligning(self.encoder)

    def locate(self, image: np.ndarray):
        """The encoder's face finder (`facespace.protocol.Aligning`)."""
        return self.encoder.locate(image)

    def align(self, image: np.ndarray, box):
        """The encoder's alignment (`facespace.protocol.Aligning`)."""
        return self.encoder.align(image, box)

    def draw(self, z: torch.Tensor) -> torch.Tensor:
        """`(B, code_size)` -> `(B, C, size, size)` in [0, 1]."""
        x = self.start(z).view(len(z), self._chans0, 4, 4)
        return torch.sigmoid(self.body(x))

    def decode_tensor(self, z: torch.Tensor) -> torch.Tensor:
        """`(B, code_size)` -> `(B, C, out_size, out_size)`: the drawing, upsampled to the encoder's side."""
        x = self.draw(z)
        if self.config.out_size != self.config.size:
            x = F.interpolate(x, size=(self.config.out_size,) * 2, mode="bilinear", align_corners=False)
        return x

    def loss(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """`(codes (B, code_size), faces (B, C, size, size))` -> mean squared error of the drawing."""
        z, target = batch
        mse = F.mse_loss(self.draw(z.float()), target.float())
        return mse, {"mse": float(mse.detach())}


def load_dlib_ae() -> IdentityAutoencoder:
    """The shipped decoder of dlib's codes (`load_model("dlib-ae")`; needs the [dlib] extra)."""
    from facespace.models.registry import EXTRAS_DIR

    model = load_model(EXTRAS_DIR / "dlib-ae.safetensors", kind=IdentityAutoencoder.kind)
    model.encoder  # fails now, with the pip command, where the extra is missing
    return model
