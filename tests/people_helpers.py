"""Test helpers of the people area (verify, LFW protocol, gallery, clustering).

A tiny deterministic encoder that saves and loads like any model, and synthetic "people": each a
smooth random pattern, each image of them that pattern plus a little noise, so that a random
projection keeps people apart. No other engineer's model is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facespace.models.registry import config_from_dict, register_model


@dataclass(frozen=True)
class TinyConfig:
    size: int = 16
    channels: int = 1
    code_size: int = 24
    seed: int = 0


@register_model
class TinyEncoder:
    """Codes = centred pixels times a fixed random projection (seeded)."""

    kind = "tiny_people_test"
    Config = TinyConfig

    def __init__(self, config: TinyConfig = TinyConfig(), weight: np.ndarray | None = None):
        self.config = config
        m = config.size * config.size * config.channels
        if weight is None:
            weight = np.random.default_rng(config.seed).normal(size=(m, config.code_size)).astype(np.float32)
        self.weight = weight
        self.checkpoint_info: dict = {}

    @property
    def image_shape(self):
        return (self.config.size, self.config.size, self.config.channels)

    @property
    def code_size(self):
        return self.config.code_size

    def encode(self, images, *, batch_size=256):
        from facespace.protocol import check_images

        x = check_images(images, self.image_shape)
        return ((x.reshape(len(x), -1) - 0.5) @ self.weight).astype(np.float32)

    def state_tensors(self):
        return {"weight": torch.from_numpy(self.weight)}

    @classmethod
    def from_state(cls, config, tensors):
        return cls(config_from_dict(TinyConfig, config), tensors["weight"].numpy())


def patterns(n_people: int, size: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """`(n_people, size, size, channels)` smooth random patterns in [0.1, 0.9]."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_people):
        coarse = (rng.random((5, 5, channels)) * 255).astype(np.uint8)
        img = Image.fromarray(coarse[..., 0] if channels == 1 else coarse).resize((size, size), Image.BILINEAR)
        a = np.asarray(img, np.float32) / 255.0
        out.append(0.1 + 0.8 * (a[..., None] if channels == 1 else a))
    return np.stack(out)


def faces_of(base: np.ndarray, n: int, rng: np.random.Generator, noise: float = 0.03) -> np.ndarray:
    """`n` noisy images `(n, H, W, C)` of one person's pattern."""
    x = base[None] + rng.normal(0, noise, (n, *base.shape)) + rng.normal(0, 0.02, (n, 1, 1, 1))
    return np.clip(x, 0, 1).astype(np.float32)


def write_people(root: Path, n_people: int, n_images: int, *, size: int = 40, ext: str = ".png",
                 seed: int = 0, prefix: str = "P", grey: bool = False) -> dict[str, list[Path]]:
    """Write `root/<Name>/<Name>_NNNN<ext>` for synthetic people; returns {name: paths}."""
    from PIL import Image

    rng = np.random.default_rng(seed + 1)
    bases = patterns(n_people, size, 1 if grey else 3, seed)
    written = {}
    for i, base in enumerate(bases):
        name = f"{prefix}{i:02d}"
        (root / name).mkdir(parents=True, exist_ok=True)
        paths = []
        for j, img in enumerate(faces_of(base, n_images, rng)):
            p = root / name / f"{name}_{j + 1:04d}{ext}"
            pixels = (img * 255).round().astype(np.uint8)
            Image.fromarray(pixels[..., 0] if grey else pixels).save(p)
            paths.append(p)
        written[name] = paths
    return written
