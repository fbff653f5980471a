"""Shared plumbing for torch models: numpy in, numpy out, batched, no gradients.

A network subclasses `TorchEncoder` (codes only) or `TorchAutoencoder` (codes and images) and
implements `encode_tensor` / `decode_tensor` on `(B, C, H, W)` float tensors. The numpy-level
`encode` / `decode` of the `Encoder` protocol come from here, so every model batches, checks its
input and converts layouts the same way.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from facespace.errors import FacespaceError
from facespace.models.registry import config_from_dict
from facespace.protocol import check_codes, check_images


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """`(n, H, W, C)` numpy -> `(n, C, H, W)` float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """`(n, C, H, W)` tensor -> `(n, H, W, C)` float32 numpy."""
    return x.detach().float().cpu().numpy().transpose(0, 2, 3, 1).copy()


class TorchEncoder(nn.Module):
    """Base of torch models that honour `Encoder`. Subclasses set `kind` and `Config`."""

    kind: ClassVar[str] = ""
    Config: ClassVar[type]

    def __init__(self, config: Any):
        super().__init__()
        self.config = config
        self.checkpoint_info: dict[str, Any] = {}

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.config.size, self.config.size, self.config.channels)

    @property
    def code_size(self) -> int:
        return self.config.code_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C, H, W)` -> `(B, d)`."""
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, images: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """`(n, H, W, C)` float32 in [0, 1] -> `(n, d)` float32."""
        x = check_images(images, self.image_shape)
        was_training = self.training
        self.eval()
        try:
            out = [
                self.encode_tensor(to_tensor(x[i : i + batch_size]).to(self.device)).float().cpu().numpy()
                for i in range(0, len(x), batch_size)
            ]
        finally:
            self.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, self.code_size), np.float32)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return self.state_dict()

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]):
        model = cls(config_from_dict(cls.Config, config))
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as e:
            raise FacespaceError(f"checkpoint weights do not fit a {cls.kind!r} model with this config: {e}") from None
        return model


class TorchAutoencoder(TorchEncoder):
    """A `TorchEncoder` with a decoder (honours `Autoencoder`)."""

    def decode_tensor(self, z: torch.Tensor) -> torch.Tensor:
        """`(B, d)` -> `(B, C, H, W)`."""
        raise NotImplementedError

    @torch.no_grad()
    def decode(self, codes: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
        """`(n, d)` float32 -> `(n, H, W, C)` float32 (not clipped)."""
        z = check_codes(codes, self.code_size)
        was_training = self.training
        self.eval()
        try:
            out = [
                to_numpy(self.decode_tensor(torch.from_numpy(z[i : i + batch_size]).to(self.device)))
                for i in range(0, len(z), batch_size)
            ]
        finally:
            self.train(was_training)
        if not out:
            return np.zeros((0, *self.image_shape), np.float32)
        return np.concatenate(out)
