"""The linear autoencoder: Dense(d) encoder, Dense(m) decoder, no activation, trained by gradient.

Inputs are centred on a fixed mean image (`set_mean`), as the course centred pixels on 0.5.

It spans the same subspace as PCA at its optimum (Baldi & Hornik, 1989); it is here as the
course's "linear view" of PCA and as a check on the training loop.

Example:
    >>> net = LinearAutoencoder(LinearConfig(size=8, channels=1, code_size=4))
    >>> net.encode(np.zeros((2, 8, 8, 1), np.float32)).shape
    (2, 4)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np  # noqa: F401  (used by the doctest)
import torch
import torch.nn.functional as F
from torch import nn

from facespace.models.registry import register_model
from facespace.errors import FacespaceError
from facespace.models.base import TorchAutoencoder


@dataclass(frozen=True)
class LinearConfig:
    size: int = 32  # image side
    channels: int = 3  # 1 (grey) or 3 (RGB)
    code_size: int = 32  # length of a code


@register_model
class LinearAutoencoder(TorchAutoencoder):
    """`z = W_e x + b_e`, `x_hat = W_d z + b_d` on flattened `(C, H, W)` pixels."""

    kind = "linear"
    Config = LinearConfig

    def __init__(self, config: LinearConfig):
        super().__init__(config)
        if config.size < 1 or config.channels not in (1, 3) or config.code_size < 1:
            raise FacespaceError(f"bad linear autoencoder config {config}: size >= 1, channels 1 or 3, code_size >= 1")
        m = config.size * config.size * config.channels
        # a fixed per-pixel offset (the training mean; the course used 0.5): the biases could absorb
        # it, but centred inputs make gradient descent converge many times faster
        self.register_buffer("mean", torch.zeros(m))
        self.encoder = nn.Linear(m, config.code_size)
        self.decoder = nn.Linear(config.code_size, m)

    def set_mean(self, images: torch.Tensor) -> "LinearAutoencoder":
        """Centre on the per-pixel mean of `(n, C, H, W)` training images (before training)."""
        with torch.no_grad():
            self.mean.copy_(images.float().flatten(1).mean(0))
        return self

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1) - self.mean)  # (B, d)

    def decode_tensor(self, z: torch.Tensor) -> torch.Tensor:
        c = self.config
        return (self.decoder(z) + self.mean).view(-1, c.channels, c.size, c.size)  # (B, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_tensor(self.encode_tensor(x))

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean squared reconstruction error of a `(B, C, H, W)` batch."""
        loss = F.mse_loss(self(batch), batch)
        return loss, {"mse": float(loss.detach())}
