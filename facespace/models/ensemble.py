"""Several verifiers, each looking at its own part of the face, as one model (kind "ensemble").

Verifiers trained on different crops of the face (the tight face, a wider box with hair and jaw,
the inner eyes-to-mouth box) make different mistakes, so the mean of their cosine similarities
separates same from different people better than any one of them (`benchmarks/verification.py`).
`VerifierEnsemble` takes one image of the union of the members' boxes, cuts each member's box out of
it, resizes it to the member's input with area averaging (as the data layer does when it loads a
file) and concatenates the members' unit embeddings divided by sqrt(M): the code is unit length and
the cosine similarity of two codes is the mean of the members' cosine similarities. It honours
`Encoder`, so verification, identification, search and clustering take it as they take a verifier.

Members are combined after training (`ensemble_verifiers`); each keeps its own config and weights
inside the one checkpoint. The input side matters little when it keeps the file's pixels: on fold 1
of LFW View 2 (tight + wide + inner 48-px members) the ensemble's AUC is 0.9589 at 160 px, the same
as each member reading its own crop from the files, 0.9579 at 128 px and 0.9567 at 96 px.

Example:
    >>> from facespace.models.verifier import VerifierConfig, VerifierNet
    >>> a = VerifierNet(VerifierConfig(size=16, channels=3, code_size=8, width=4, blocks=(1, 1)))
    >>> b = VerifierNet(VerifierConfig(size=16, channels=3, code_size=8, width=4, blocks=(1, 1)))
    >>> e = ensemble_verifiers([a, b], crops=[(10, 10, 50, 50), (0, 0, 60, 60)], size=24)
    >>> e.image_shape, e.code_size, e.crop
    ((24, 24, 3), 16, (0, 0, 60, 60))
    >>> codes = e.encode(np.random.rand(2, 24, 24, 3).astype(np.float32))
    >>> np.allclose(np.linalg.norm(codes, axis=1), 1)
    True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from facespace.models.registry import config_from_dict, register_model
from facespace.data.images import LFW_BOX  # the "lfw" crop: the central 90x90 of a 250x250 LFW original
from facespace.errors import FacespaceError
from facespace.models.base import TorchEncoder, to_numpy, to_tensor
from facespace.models.verifier import VerifierConfig, VerifierNet


@dataclass(frozen=True)
class EnsembleConfig:
    """Everything that builds a `VerifierEnsemble` (the members' weights come from the checkpoint)."""

    size: int = 160  # input side: the union of the members' boxes resized to size x size
    channels: int = 3  # every member's channels
    members: tuple[dict, ...] = ()  # each member's `VerifierConfig` as a dict
    boxes: tuple[tuple[float, ...], ...] = ()  # each member's (top, left, bottom, right) as fractions of the input

    def __post_init__(self) -> None:
        if not self.members or len(self.members) != len(self.boxes):
            raise FacespaceError(f"an ensemble needs >= 1 member and one box per member; got "
                                 f"{len(self.members)} members and {len(self.boxes)} boxes")
        for box in self.boxes:
            t, l, b, r = box
            if not (0 <= t < b <= 1 and 0 <= l < r <= 1):
                raise FacespaceError(f"member box {box} is not (top, left, bottom, right) fractions inside the input")
        if self.size < 8:
            raise FacespaceError(f"size must be >= 8 pixels; got {self.size}")


def resize_weights(start: float, stop: float, n_in: int, n_out: int) -> np.ndarray:
    """`(n_out, n_in)` row-stochastic weights that resample pixels `[start, stop)` of a line of
    `n_in` to `n_out`, as Pillow's `resize(box=...)` does: a box filter (area averaging) when
    shrinking, a triangle filter (bilinear) when enlarging."""
    scale = (stop - start) / n_out
    shrink = scale >= 1
    support = (0.5 if shrink else 1.0) * max(scale, 1.0)
    w = np.zeros((n_out, n_in), np.float64)
    for i in range(n_out):
        centre = start + (i + 0.5) * scale
        lo, hi = max(0, int(centre - support + 0.5)), min(n_in, int(centre + support + 0.5))
        x = (np.arange(lo, hi) + 0.5 - centre) / max(scale, 1.0)
        k = ((x > -0.5) & (x <= 0.5)).astype(np.float64) if shrink else np.clip(1 - np.abs(x), 0, None)
        if k.sum() == 0:  # a degenerate sliver: take the nearest pixel
            k = np.zeros_like(x)
            k[np.argmin(np.abs(x))] = 1.0
        w[i, lo:hi] = k / k.sum()
    return w


@register_model
class VerifierEnsemble(TorchEncoder):
    """Image of the union box -> `(n, sum of member code sizes)` unit codes (mean member cosine)."""

    kind = "ensemble"
    Config = EnsembleConfig

    def __init__(self, config: EnsembleConfig):
        super().__init__(config)
        self.members = nn.ModuleList(VerifierNet(config_from_dict(VerifierConfig, m)) for m in config.members)
        for i, (member, box) in enumerate(zip(self.members, config.boxes)):
            if member.config.channels != config.channels:
                raise FacespaceError(f"ensemble members must all be colour or all grey: member {i} takes "
                                     f"{member.config.channels} channels, the ensemble {config.channels}")
            t, l, b, r = (v * config.size for v in box)
            side = member.config.size
            # derived from the config, so not saved with the weights
            self.register_buffer(f"rows{i}", torch.from_numpy(resize_weights(t, b, config.size, side)).float(), persistent=False)
            self.register_buffer(f"cols{i}", torch.from_numpy(resize_weights(l, r, config.size, side)).float(), persistent=False)

    @property
    def code_size(self) -> int:
        return sum(m.config.code_size for m in self.members)

    @property
    def min_face_side(self) -> int:
        """The smallest face (the union box, in source pixels) at which every member still gets its
        box at its own input resolution: what the quality check calls too small."""
        return int(np.ceil(max(m.config.size / min(b - t, r - l)
                               for m, (t, l, b, r) in zip(self.members, self.config.boxes))))

    @property
    def crop(self) -> Any:
        """The union box recorded with the ensemble (`checkpoint_info["extra"]["crop"]`)."""
        from facespace.data.crops import model_crop

        return model_crop(self)

    def member_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """`(B, C, size, size)` -> each member's `(B, C, s_i, s_i)` cut of its own box."""
        return [torch.einsum("hy,bcyx,wx->bchw", getattr(self, f"rows{i}"), x, getattr(self, f"cols{i}"))
                for i in range(len(self.members))]

    @torch.no_grad()
    def member_images(self, images: np.ndarray, *, batch_size: int = 256) -> list[np.ndarray]:
        """`(n, size, size, C)` float32 images of the union box -> each member's `(n, s_i, s_i, C)`
        cut of its own box (`member_inputs` in batches), to train or encode a member alone."""
        cuts: list[list[np.ndarray]] = [[] for _ in self.members]
        for i in range(0, len(images), batch_size):
            for k, c in enumerate(self.member_inputs(to_tensor(images[i : i + batch_size]))):
                cuts[k].append(to_numpy(c))
        return [np.concatenate(c) for c in cuts]

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, C, size, size)` -> `(B, d)`: the members' unit codes side by side, over sqrt(M)."""
        z = [m.encode_tensor(v) for m, v in zip(self.members, self.member_inputs(x))]
        return torch.cat(z, dim=1) / math.sqrt(len(z))


def member_box(crop: Any) -> tuple[float, float, float, float]:
    """A member's crop as a pixel box of a 250x250 LFW-style original, or an error saying why not."""
    from facespace.data.crops import parse_crop

    crop = parse_crop(crop)
    if isinstance(crop, str):  # "lfw"
        return LFW_BOX
    if crop is None or min(crop) < 0 or max(crop) <= 1:
        raise FacespaceError(f"an ensemble member needs a crop given as a pixel box (top, left, bottom, right), "
                             f"such as tight or 50,45,210,205; got {crop!r}: retrain that member with --crop BOX")
    return tuple(float(v) for v in crop)


def ensemble_verifiers(models: Sequence[Any], *, crops: Sequence[Any] | None = None, size: int = 160) -> VerifierEnsemble:
    """One `VerifierEnsemble` from trained verifiers, each with its crop.

    Args:
        models: `VerifierNet`s (all colour or all grey).
        crops: each model's crop (`facespace.data.crops`); default: the crop recorded with each model.
        size: the ensemble's input side; the union of the boxes is resized to it. Pick it so each
            member's box keeps at least the member's input side (box side x size / union side >=
            member size), or that member sees an enlarged, blurrier face; the union's own side in
            pixels (160 for tight + the 160-px wide box) cuts each member's box from the file's pixels.

    Returns:
        The ensemble, in eval mode, with the union box recorded as its crop.
    """
    from facespace.data.crops import crop_record, model_crop

    if not models:
        raise FacespaceError("ensemble_verifiers needs at least one verifier")
    for m in models:
        if getattr(m, "kind", None) != "verifier":
            raise FacespaceError(f"ensemble members must be verifiers; got a {getattr(m, 'kind', type(m).__name__)!r} model")
    crops = [model_crop(m) for m in models] if crops is None else list(crops)
    if len(crops) != len(models):
        raise FacespaceError(f"{len(models)} models but {len(crops)} crops; give one crop per model")
    boxes = [member_box(c) for c in crops]
    t, l = min(b[0] for b in boxes), min(b[1] for b in boxes)
    b_, r = max(b[2] for b in boxes), max(b[3] for b in boxes)
    union = tuple(int(v) if float(v).is_integer() else v for v in (t, l, b_, r))
    rel = tuple(((bt - t) / (b_ - t), (bl - l) / (r - l), (bb - t) / (b_ - t), (br - l) / (r - l)) for bt, bl, bb, br in boxes)
    # every member must take these channels: VerifierEnsemble refuses one that does not
    config = EnsembleConfig(size=size, channels=models[0].config.channels, boxes=rel,
                            members=tuple(dataclasses.asdict(m.config) for m in models))
    ens = VerifierEnsemble(config)
    for dst, src in zip(ens.members, models):
        dst.load_state_dict(src.state_dict())
    # what each member was: its crop, file and training settings (provenance; the weights are inside)
    kept = ("crop", "objective", "loop", "people", "images")
    info = [{**{k: v for k, v in (getattr(m, "checkpoint_info", {}).get("extra") or {}).items() if k in kept},
             "crop": crop_record(c), "file": getattr(m, "checkpoint_info", {}).get("path")} for m, c in zip(models, crops)]
    ens.checkpoint_info = {"extra": {"crop": crop_record(union), "members": info}}
    return ens.eval()
