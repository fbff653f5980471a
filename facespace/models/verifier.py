"""A residual CNN that maps a face to a unit-length identity embedding (kind "verifier").

It is trained on identities (see `facespace.training.verifier`), not on reconstruction, so the cosine
distance between two embeddings says whether two faces show the same person. It has no decoder.

The layout follows the "improved residual" networks of face recognition (ArcFace's IR blocks)
scaled down for CPUs: a 3x3 stem, stages that halve the resolution and double the width, blocks
`BN-conv-BN-PReLU-conv-BN` with a shortcut, then `BN-dropout-flatten-linear-BN` to the embedding
(flattening keeps where on the face a feature was seen, which global pooling would throw away).

Example:
    >>> model = VerifierNet(VerifierConfig(size=32, channels=1, code_size=16, width=8))
    >>> codes = model.encode(np.random.rand(2, 32, 32, 1).astype(np.float32))
    >>> codes.shape, np.allclose(np.linalg.norm(codes, axis=1), 1)
    ((2, 16), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np  # noqa: F401  (used in the docstring example)
import torch
import torch.nn.functional as F
from torch import nn

from facespace.models.registry import register_model
from facespace.errors import FacespaceError
from facespace.models.base import TorchEncoder


@dataclass(frozen=True)
class VerifierConfig:
    """Everything that builds a `VerifierNet`."""

    size: int = 64  # input side H = W in pixels; must be divisible by 2 ** len(blocks)
    channels: int = 1  # 1 for grey, 3 for colour
    code_size: int = 128  # embedding length d
    width: int = 16  # channels of the first stage; each later stage doubles it
    blocks: tuple[int, ...] = (1, 2, 2, 1)  # residual blocks per stage; each stage halves H and W
    dropout: float = 0.2  # dropout before the embedding layer (training only)
    flip_test: bool = True  # embed image and mirror image and add them (test-time augmentation)
    shift_test: int = 0  # > 0: also embed copies shifted this many pixels up, down, left, right, and add them

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise FacespaceError(f"channels must be 1 (grey) or 3 (colour); got {self.channels}")
        if not self.blocks or min(self.blocks) < 1:
            raise FacespaceError(f"blocks must list at least one stage of >= 1 block; got {self.blocks}")
        step = 2 ** len(self.blocks)
        if self.size < step or self.size % step:
            raise FacespaceError(
                f"size {self.size} is not divisible by 2**{len(self.blocks)} = {step} (one halving per "
                f"stage); use a size such as {max(step, round(self.size / step) * step)} or fewer stages"
            )
        if not 0 <= self.shift_test < self.size // 4:
            raise FacespaceError(f"shift_test must be in [0, {self.size // 4}) pixels; got {self.shift_test}")
        if self.code_size < 2 or self.width < 1:
            raise FacespaceError(f"code_size must be >= 2 and width >= 1; got {self.code_size}, {self.width}")
        if not 0.0 <= self.dropout < 1.0:
            raise FacespaceError(f"dropout must be in [0, 1); got {self.dropout}")


class ResidualBlock(nn.Module):
    """`BN-conv3x3(stride)-BN-PReLU-conv3x3-BN` plus a shortcut: `(B, c_in, H, W) -> (B, c_out, H/s, W/s)`."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in),
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.PReLU(c_out),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        if stride == 1 and c_in == c_out:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


@register_model
class VerifierNet(TorchEncoder):
    """Face -> identity embedding network. `encode` returns L2-normalised `(n, code_size)` codes."""

    kind = "verifier"
    Config = VerifierConfig

    def __init__(self, config: VerifierConfig = VerifierConfig()):
        super().__init__(config)
        w = config.width
        self.stem = nn.Sequential(
            nn.Conv2d(config.channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.PReLU(w)
        )
        stages, c = [], w
        for i, n in enumerate(config.blocks):
            c_out = w * 2**i
            # The first block of a stage halves the resolution, in its first conv: on a CPU the
            # convolutions at full resolution are what costs.
            stages += [ResidualBlock(c, c_out, 2)] + [ResidualBlock(c_out, c_out, 1) for _ in range(n - 1)]
            c = c_out
        self.stages = nn.Sequential(*stages)
        side = config.size // 2 ** len(config.blocks)
        self.head = nn.Sequential(
            nn.BatchNorm2d(c),
            nn.Dropout(config.dropout),
            nn.Flatten(),
            nn.Linear(c * side * side, config.code_size),
            nn.BatchNorm1d(config.code_size),
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` in [0, 1] -> `(B, d)` raw (not normalised) embeddings; used in training."""
        x = (x - 0.5) / 0.5  # centre the pixels; BN after the stem does the rest
        return self.head(self.stages(self.stem(x)))

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` -> `(B, d)` unit-length embeddings: the sum of the unit embeddings of the
        image, its mirror (`flip_test`) and its four copies shifted by `shift_test` pixels."""
        views = [x] + [shift_image(x, dx, dy) for dx, dy in _shifts(self.config.shift_test)]
        z = 0
        for v in views:
            z = z + F.normalize(self.embed(v), dim=1)
            if self.config.flip_test:
                z = z + F.normalize(self.embed(torch.flip(v, dims=(-1,))), dim=1)
        return F.normalize(z, dim=1)


def _shifts(pixels: int) -> list[tuple[int, int]]:
    """The four `(dx, dy)` shifts of `pixels` (none for 0)."""
    return [(pixels, 0), (-pixels, 0), (0, pixels), (0, -pixels)] if pixels else []


def shift_image(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Shift `(B, C, H, W)` images by whole pixels (right/down positive), repeating the border."""
    h, w = x.shape[-2:]
    rows = (torch.arange(h, device=x.device) - dy).clamp(0, h - 1)
    cols = (torch.arange(w, device=x.device) - dx).clamp(0, w - 1)
    return x[..., rows[:, None], cols[None, :]]
