"""A fixed linear adaptation on top of another model's codes, saved as a model of its own.

`facespace.people.adaptation.CodeAdapter` learns the map (centre, then WCCN or LDA) from labelled
people; `AdaptedEncoder` carries the learned `mean` and `components` with the name of the model
beneath (e.g. "dlib" with flip averaging), so `load_model("dlib-adapted")` gives codes that are
compared by cosine like any other model's. Everything else (alignment, input shape) is the base
model's.

Example:
    >>> from facespace.models.pixels import PixelEncoder
    >>> base = PixelEncoder(size=2, channels=1)
    >>> m = AdaptedEncoder(AdaptedConfig(base="pixels:2:grey", code_size=4), np.zeros(4), np.eye(4), base=base)
    >>> m.encode(np.ones((1, 2, 2, 1), np.float32)).round(2)
    array([[0.5, 0.5, 0.5, 0.5]], dtype=float32)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from facespace.models.registry import (EXTRAS_DIR, builtin_card, config_from_dict, function_of, load_model,
                                       register_model, resolve_model)
from facespace.protocol import is_aligning


@dataclass(frozen=True)
class AdaptedConfig:
    base: str = "dlib"  # the model beneath, by the name resolve_model knows
    base_options: str = "{}"  # JSON: options the base is built with (dlib: {"flip": true})
    code_size: int = 128  # length of the adapted codes
    method: str = "wccn"  # how the map was learned (facespace.people.adaptation.METHODS), for the record


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@register_model
class AdaptedEncoder:
    """`encode(x) = unit((unit(base.encode(x)) - mean) @ components)`.

    Args:
        config: an `AdaptedConfig`.
        mean: `(d,)` the base codes' mean; components: `(d, code_size)`.
        base: the base model, when already loaded (default: by `config.base` on first use).
    """

    kind = "adapted"

    def __init__(self, config: AdaptedConfig, mean: Any, components: Any, base: Any = None):
        self.config = config
        self.mean = np.asarray(mean, np.float64)
        self.components = np.asarray(components, np.float64)
        self._base = base
        self.checkpoint_info: dict[str, Any] = {}

    @property
    def base(self) -> Any:
        if self._base is None:
            options = json.loads(self.config.base_options)
            if options:  # a model an extra provides, built with these options
                self._base = function_of(builtin_card(self.config.base)["loader"])(**options)
            else:
                self._base = resolve_model(self.config.base)
        return self._base

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.base.image_shape)

    @property
    def code_size(self) -> int:
        return self.config.code_size

    def encode(self, images: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """`(n, H, W, C)` at the base's shape -> `(n, code_size)` float32 unit-length codes (cosine)."""
        z = np.asarray(self.base.encode(images, batch_size=batch_size), np.float64)
        return _unit((_unit(z) - self.mean) @ self.components).astype(np.float32)

    @property
    def min_face_side(self) -> int | None:
        """The base's smallest full-resolution face, where it says (the quality check's "too small")."""
        return getattr(self.base, "min_face_side", None)

    @property
    def aligns(self) -> bool:
        """Whether the base model cuts its own faces (then so does this one)."""
        return is_aligning(self.base)

    def locate(self, image: np.ndarray):
        """The base model's face finder, where it has one (`facespace.protocol.Aligning`)."""
        return self.base.locate(image)

    def align(self, image: np.ndarray, box):
        """The base model's alignment, where it has one (`facespace.protocol.Aligning`)."""
        return self.base.align(image, box)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"mean": torch.from_numpy(self.mean.copy()), "components": torch.from_numpy(self.components.copy())}

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> "AdaptedEncoder":
        return cls(config_from_dict(AdaptedConfig, config), tensors["mean"].double().numpy(),
                   tensors["components"].double().numpy())


def load_adapted(file: str) -> AdaptedEncoder:
    """A shipped adaptation (`load_model("dlib-adapted")`): `file` in the extras folder."""
    model = load_model(EXTRAS_DIR / file, kind=AdaptedEncoder.kind)
    model.base  # fails now, with the pip command, where the base model's extra is missing
    return model
