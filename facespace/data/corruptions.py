"""Corruptions for denoising: Gaussian white noise and random occluding rectangles.

Used twice: by denoising training (`facespace.training.objectives.Denoising`, a fresh corruption each
batch, on `(B, C, H, W)` tensors) and by `facespace generate denoise` (on `(n, H, W, C)` numpy images).
A corruption is described by a short spec string, e.g. `"gaussian:0.1"`, `"rect:2"`,
`"gaussian:0.1+rect:1:0.4"`.

Example:
    >>> c = parse_corruption("gaussian:0.1")
    >>> noisy = c.apply(np.zeros((2, 8, 8, 3), np.float32), seed=0)
    >>> noisy.shape
    (2, 8, 8, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from facespace.errors import FacespaceError

_HELP = "expected e.g. 'gaussian:0.1', 'rect:2' (2 rectangles), 'rect:2:0.5' (up to half the side) or 'gaussian:0.1+rect:1'"


@dataclass(frozen=True)
class Corruption:
    """What to do to a clean image.

    Attributes:
        sigma: standard deviation of additive Gaussian white noise (pixels in [0, 1]); 0 for none.
        rectangles: how many occluding rectangles per image; 0 for none.
        max_side: largest rectangle side as a fraction of the image side.
        fill: grey level inside a rectangle.
    """

    sigma: float = 0.0  # Gaussian noise std
    rectangles: int = 0  # occluders per image
    max_side: float = 0.5  # largest rectangle side / image side
    fill: float = 0.0  # grey level of an occluder

    def __post_init__(self):
        if not (self.sigma >= 0 and np.isfinite(self.sigma)):
            raise FacespaceError(f"noise sigma must be a finite number >= 0; got {self.sigma}")
        if self.rectangles < 0:
            raise FacespaceError(f"number of rectangles must be >= 0; got {self.rectangles}")
        if not 0 < self.max_side <= 1:
            raise FacespaceError(f"rectangle max_side must be in (0, 1]; got {self.max_side}")

    @property
    def is_identity(self) -> bool:
        return self.sigma == 0 and self.rectangles == 0

    def spec(self) -> str:
        """The spec string that parses back to this corruption."""
        parts = []
        if self.sigma:
            parts.append(f"gaussian:{self.sigma:g}")
        if self.rectangles:
            parts.append(f"rect:{self.rectangles}:{self.max_side:g}")
        return "+".join(parts) or "none"

    def apply_tensor(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Corrupt a `(B, C, H, W)` float tensor; returns a new tensor, `x` is untouched.

        Randomness comes from `generator` (or torch's global generator), so a seeded loop
        draws the same corruptions on a re-run and fresh ones each batch.
        """
        out = x
        if self.rectangles:
            out = out.clone()
            mask = occluder_mask(x.shape[0], x.shape[-2], x.shape[-1], self.rectangles, self.max_side, generator)
            out = torch.where(mask.to(x.device)[:, None], torch.full_like(out, self.fill), out)
        if self.sigma:
            noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
            out = out + self.sigma * noise
        return out

    def apply(self, images: np.ndarray, *, seed: int | None = 0) -> np.ndarray:
        """Corrupt `(n, H, W, C)` float32 images (not clipped, like the training input)."""
        x = np.asarray(images, dtype=np.float32)
        if x.ndim != 4:
            raise FacespaceError(f"images must be (n, H, W, C); got shape {x.shape}")
        g = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        return self.apply_tensor(t, g).numpy().transpose(0, 2, 3, 1).copy()


def occluder_mask(
    n: int, height: int, width: int, count: int, max_side: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`(n, H, W)` bool: True inside any of `count` random axis-aligned rectangles per image.

    Each side is uniform in [1, max_side * side]; the corner is uniform where the rectangle fits.
    """
    rows = torch.arange(height)[None, :]  # (1, H)
    cols = torch.arange(width)[None, :]  # (1, W)
    mask = torch.zeros(n, height, width, dtype=torch.bool)
    for _ in range(count):
        u = torch.rand(n, 4, generator=generator)  # (n, 4): height, width, top, left
        h = 1 + (u[:, 0] * max(0.0, max_side * height - 1)).long()
        w = 1 + (u[:, 1] * max(0.0, max_side * width - 1)).long()
        top = (u[:, 2] * (height - h + 1)).long().clamp(max=height - 1)
        left = (u[:, 3] * (width - w + 1)).long().clamp(max=width - 1)
        in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (n, H)
        in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (n, W)
        mask |= in_rows[:, :, None] & in_cols[:, None, :]
    return mask


def parse_corruption(spec: str | Corruption) -> Corruption:
    """Parse `"gaussian:0.1"`, `"rect:N[:MAX_SIDE]"`, or several joined by `+`; `"none"` is no-op."""
    if isinstance(spec, Corruption):
        return spec
    fields: dict[str, float | int] = {}
    text = str(spec).strip().lower()
    if text in ("", "none", "0"):
        return Corruption()
    for part in text.split("+"):
        name, *args = part.strip().split(":")
        try:
            if name in ("gaussian", "gauss", "noise") and len(args) == 1:
                fields["sigma"] = float(args[0])
            elif name in ("rect", "rects", "rectangles", "occlude") and len(args) in (1, 2):
                fields["rectangles"] = int(args[0])
                if len(args) == 2:
                    fields["max_side"] = float(args[1])
            else:
                raise ValueError
        except ValueError:
            raise FacespaceError(f"cannot read corruption {part!r} in {spec!r}; {_HELP}") from None
    return Corruption(**fields)
