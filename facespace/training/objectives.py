"""Training objectives that wrap a network: the network knows nothing of noise or augmentation.

The generic loop (`facespace.training.loop.fit`) calls `objective.loss(batch)` and saves
`objective.network`. `Reconstruction` adds optional horizontal flips and augmentation; `Denoising` corrupts each
batch afresh (Gaussian noise, occluding rectangles) and scores the output against the clean batch.

Example:
    >>> from facespace.models.conv import ConvAutoencoder, ConvConfig
    >>> net = ConvAutoencoder(ConvConfig(size=16, channels=1, code_size=4))
    >>> objective = Denoising(net, "gaussian:0.1")
    >>> loss, metrics = objective.loss(torch.rand(2, 1, 16, 16))
    >>> sorted(metrics)
    ['mse']
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facespace.data.augment import AugmentConfig, augment
from facespace.data.corruptions import Corruption, parse_corruption


class Reconstruction(nn.Module):
    """Mean squared error of `network(x)` against `x`, optionally on randomly flipped batches.

    Args:
        network: a module whose `forward` maps `(B, C, H, W)` to `(B, C, H, W)`.
        flip: mirror each training image left-right with probability 1/2 (faces are about
            symmetric, so this doubles the data). Never applied in eval mode.
        augment: random shifts, rotations, zooms and light changes of training images
            (`facespace.data.augment`); the changed image is both the input and the target, so
            the network learns faces a little off the canonical crop. Never applied in eval mode.
    """

    def __init__(self, network: nn.Module, *, flip: bool = False, augment: AugmentConfig | None = None):
        super().__init__()
        self.network = network
        self.flip = flip
        self.augment = augment

    def clean(self, batch: torch.Tensor) -> torch.Tensor:
        """The target batch `(B, C, H, W)`: the input, flipped and changed at random while training."""
        if self.flip and self.training:
            mirror = torch.rand(batch.shape[0], device=batch.device) < 0.5  # (B,)
            batch = torch.where(mirror[:, None, None, None], batch.flip(-1), batch)
        if self.augment is not None and self.training:
            batch = augment(batch, self.augment)  # drawn from torch's global generator: the loop's seed
        return batch

    def inputs(self, clean: torch.Tensor) -> torch.Tensor:
        """What the network sees; plain reconstruction sees the clean batch."""
        return clean

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network(batch)

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        target = self.clean(batch)
        loss = F.mse_loss(self.network(self.inputs(target)), target)
        return loss, {"mse": float(loss.detach())}


class Denoising(Reconstruction):
    """Reconstruct the clean batch from a freshly corrupted copy.

    Args:
        network: as for `Reconstruction`.
        corruption: a `Corruption` or spec such as `"gaussian:0.1"` or `"gaussian:0.1+rect:1"`.
        flip: as for `Reconstruction`.
    """

    def __init__(self, network: nn.Module, corruption: Corruption | str = "gaussian:0.1", *, flip: bool = False,
                 augment: AugmentConfig | None = None):
        super().__init__(network, flip=flip, augment=augment)
        self.corruption = parse_corruption(corruption)

    def inputs(self, clean: torch.Tensor) -> torch.Tensor:
        # drawn from torch's global generator: the loop's seed makes runs repeatable,
        # and every batch (training and validation) gets a fresh corruption
        return self.corruption.apply_tensor(clean)


class ModelLoss(Reconstruction):
    """The network's own `loss(batch)` (e.g. the VAE's reconstruction + beta * KL) on batches
    flipped at random as `Reconstruction` does.
    """

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self.network.loss(self.clean(batch))
