"""Random geometric and photometric changes to image batches, drawn fresh per batch.

Verification networks see each training face many times; mirroring, small shifts, rotations and
scale changes make the identity the only thing that stays constant, so the network learns that.
Everything works on `(B, C, H, W)` float tensors and is reproducible under a seed.

Example:
    >>> x = torch.rand(8, 1, 64, 64)
    >>> y = augment(x, AugmentConfig(max_rotation=5.0), seed=0)
    >>> y.shape
    torch.Size([8, 1, 64, 64])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from facespace.errors import FacespaceError


@dataclass(frozen=True)
class AugmentConfig:
    """How strongly to change each image (every change is drawn independently per image)."""

    flip: float = 0.5  # probability of a left-right mirror
    max_shift: float = 0.06  # largest shift, as a fraction of the image side, in x and in y
    max_rotation: float = 10.0  # largest rotation in degrees, either way
    min_scale: float = 0.9  # zoom range: < 1 shows more around the face, > 1 less
    max_scale: float = 1.1
    brightness: float = 0.1  # largest added brightness offset (images are in [0, 1])
    contrast: float = 0.1  # largest relative contrast change
    grey: float = 0.0  # probability that a colour image is turned grey (luma in every channel)
    share: float = 1.0  # probability that an image is changed at all (the others pass unchanged)

    def __post_init__(self) -> None:
        for name in ("share", "grey"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise FacespaceError(f"{name} is a probability; got {getattr(self, name)}, expected a value in [0, 1]")
        if not 0.0 <= self.flip <= 1.0:
            raise FacespaceError(f"flip is a probability; got {self.flip}, expected a value in [0, 1]")
        if not 0 < self.min_scale <= self.max_scale:
            raise FacespaceError(
                f"scale range ({self.min_scale}, {self.max_scale}) is empty or not positive; "
                "use 0 < min_scale <= max_scale, e.g. 0.9 and 1.1"
            )
        for name in ("max_shift", "max_rotation", "brightness", "contrast"):
            if getattr(self, name) < 0:
                raise FacespaceError(f"{name} must be >= 0; got {getattr(self, name)}")


# an augmentation that changes nothing: the base for one change at a time (`dataclasses.replace`)
NO_CHANGE = AugmentConfig(flip=0.0, max_shift=0.0, max_rotation=0.0, min_scale=1.0, max_scale=1.0, brightness=0.0,
                          contrast=0.0)


def flip_images(x: torch.Tensor) -> torch.Tensor:
    """Mirror `(B, C, H, W)` images left-right."""
    return torch.flip(x, dims=(-1,))


def random_affine(
    n: int, config: AugmentConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw `n` affine matrices `(n, 2, 3)` (flip, rotation, scale, shift) for `F.affine_grid`.

    The matrices map output coordinates to input coordinates in [-1, 1] units.
    """
    u = torch.rand(n, 5, generator=generator)  # (n, 5) uniform draws: flip, angle, scale, dx, dy
    mirror = torch.where(u[:, 0] < config.flip, -1.0, 1.0)
    angle = (2 * u[:, 1] - 1) * math.radians(config.max_rotation)
    scale = config.min_scale + u[:, 2] * (config.max_scale - config.min_scale)
    shift = (2 * u[:, 3:5] - 1) * (2 * config.max_shift)  # [-1, 1] units span 2 per image side
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * mirror
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * mirror
    theta[:, 1, 1] = cos
    theta[:, :, 2] = shift
    return theta


def augment(
    x: torch.Tensor,
    config: AugmentConfig = AugmentConfig(),
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return a randomly changed copy of a batch of images.

    Args:
        x: `(B, C, H, W)` float images in [0, 1].
        config: the strength of each change.
        seed: when given, the same seed gives the same changes.
        generator: a torch generator to draw from (ignored when `seed` is given).

    Returns:
        `(B, C, H, W)` tensor, same dtype and device, values in [0, 1].
    """
    if x.ndim != 4:
        raise FacespaceError(f"augment takes (B, C, H, W) image batches; got shape {tuple(x.shape)}")
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    b = x.shape[0]
    theta = random_affine(b, config, generator).to(device=x.device, dtype=torch.float32)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Border padding repeats edge pixels instead of drawing black frames the network could learn.
    y = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    if config.brightness > 0 or config.contrast > 0:
        u = torch.rand(b, 2, generator=generator).to(x.device)
        offset = ((2 * u[:, 0] - 1) * config.brightness).view(b, 1, 1, 1)
        gain = (1 + (2 * u[:, 1] - 1) * config.contrast).view(b, 1, 1, 1)
        mean = y.mean(dim=(1, 2, 3), keepdim=True)
        y = (y - mean) * gain + mean + offset
    if config.grey > 0 and y.shape[1] == 3:  # ITU-R 601 luma, as grey files are read
        luma = (y * torch.tensor([0.299, 0.587, 0.114], device=y.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
        turn = (torch.rand(b, generator=generator) < config.grey).to(x.device)
        y = torch.where(turn[:, None, None, None], luma.expand_as(y), y)
    y = y.clamp_(0.0, 1.0).to(x.dtype)
    if config.share < 1.0:
        keep = torch.rand(b, generator=generator).to(x.device) >= config.share  # (B,) left as they are
        y = torch.where(keep[:, None, None, None], x, y)
    return y


def parse_augment(spec: Any) -> AugmentConfig | None:
    """An `AugmentConfig` from text such as `"max_shift=0.04,max_rotation=5,share=0.5"` (fields
    not named keep their defaults), "default", or "none"/None/"" (no augmentation).

    Raises:
        FacespaceError: an unknown field or a value that is not a number, naming the fields.
    """
    if spec is None or isinstance(spec, AugmentConfig):
        return spec
    text = str(spec).strip()
    if text in ("", "none"):
        return None
    if text == "default":
        return AugmentConfig()
    fields = {f.name for f in dataclasses.fields(AugmentConfig)}
    values: dict[str, float] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in fields:
            raise FacespaceError(f"unknown augmentation {key!r} in {text!r}; expected name=value pairs of: "
                                 f"{', '.join(sorted(fields))} (e.g. max_shift=0.04,max_rotation=5,share=0.5)")
        try:
            values[key] = float(value)
        except ValueError:
            raise FacespaceError(f"augmentation {key!r} needs a number; got {value.strip()!r} in {text!r}") from None
    return AugmentConfig(**values)


def augment_spec(config: AugmentConfig | None) -> str:
    """The text `parse_augment` reads back into `config` ("none" for None)."""
    if config is None:
        return "none"
    return ",".join(f"{f.name}={getattr(config, f.name):g}" for f in dataclasses.fields(config))
