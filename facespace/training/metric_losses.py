"""Losses that pull images of one person together and push different people apart.

- `MarginSoftmax`: a softmax over identities on scaled cosines between an embedding and one learned
  centre per person, with a margin on the true class: CosFace (`cos θ - m`) or ArcFace
  (`cos(θ + m)`). With `margin=0` it is plain cross-entropy on `scale * cos θ`.
- `contrastive_loss` and `triplet_loss` compare embeddings inside a batch (which then needs
  several images per person) and need no per-person parameters.

Example:
    >>> head = MarginSoftmax(128, n_classes=10, margin=0.35, scale=30.0)
    >>> loss, acc = head(torch.randn(4, 128), torch.tensor([0, 1, 2, 3]))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facespace.errors import FacespaceError

MARGIN_KINDS = ("cosface", "arcface")


def margin_logits(
    cosines: torch.Tensor, labels: torch.Tensor, *, margin: float, scale: float, kind: str = "cosface"
) -> torch.Tensor:
    """Apply the margin to the true class's cosine and scale all of them.

    Args:
        cosines: `(B, K)` cosines between B embeddings and K class centres.
        labels: `(B,)` int64 true class per row.
        margin: CosFace subtracts it from the cosine; ArcFace adds it (radians) to the angle.
        scale: the softmax temperature's inverse (`s` in the papers).
        kind: "cosface" or "arcface".

    Returns:
        `(B, K)` logits.
    """
    if kind not in MARGIN_KINDS:
        raise FacespaceError(f"unknown margin kind {kind!r}; expected one of: {', '.join(MARGIN_KINDS)}")
    true = cosines.gather(1, labels[:, None])  # (B, 1)
    if kind == "cosface":
        target = true - margin
    else:
        theta = torch.acos(true.clamp(-1 + 1e-6, 1 - 1e-6))
        # Past θ = π - m the angle would wrap and the margin would help; fall back to CosFace there.
        target = torch.where(theta + margin < torch.pi, torch.cos(theta + margin), true - margin)
    out = cosines.scatter(1, labels[:, None], target)
    return out * scale


class MarginSoftmax(nn.Module):
    """Cosine-margin softmax over identities (CosFace / ArcFace).

    Args:
        embed_dim: `d`, the embedding length.
        n_classes: K, the number of people.
        margin: the margin on the true class (CosFace: cosine units, ArcFace: radians).
        scale: `s`, multiplies every cosine before the softmax.
        kind: "cosface" or "arcface".
    """

    def __init__(self, embed_dim: int, n_classes: int, *, margin: float = 0.35, scale: float = 30.0,
                 kind: str = "cosface"):
        super().__init__()
        if n_classes < 2:
            raise FacespaceError(f"a softmax over identities needs at least 2 people; got {n_classes}")
        if kind not in MARGIN_KINDS:
            raise FacespaceError(f"unknown margin kind {kind!r}; expected one of: {', '.join(MARGIN_KINDS)}")
        self.margin, self.scale, self.kind = float(margin), float(scale), kind
        self.weight = nn.Parameter(torch.randn(n_classes, embed_dim) * 0.01)  # (K, d) class centres

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """`(B, d)` -> `(B, K)` cosines to every class centre."""
        return F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return `(mean loss, accuracy)` of `(B, d)` embeddings with `(B,)` int64 labels."""
        cos = self.cosines(embeddings.float())
        logits = margin_logits(cos, labels, margin=self.margin, scale=self.scale, kind=self.kind)
        acc = (cos.argmax(1) == labels).float().mean()
        return F.cross_entropy(logits, labels), acc


def _pair_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, B)` bool masks of same-person pairs (diagonal excluded) and different-person pairs."""
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def contrastive_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.5) -> torch.Tensor:
    """Mean over all pairs in the batch of Hadsell et al.'s contrastive loss on cosine distance.

    Same-person pairs pay `d²`, different-person pairs pay `max(0, margin - d)²`, with
    `d = 1 - cos` between L2-normalised embeddings.

    Args:
        embeddings: `(B, d)`.
        labels: `(B,)` person ids.
        margin: distance beyond which different people cost nothing.
    """
    z = F.normalize(embeddings.float(), dim=1)
    d = 1 - z @ z.T  # (B, B) cosine distances
    pos, neg = _pair_masks(labels)
    cost = torch.where(pos, d**2, torch.where(neg, F.relu(margin - d) ** 2, torch.zeros_like(d)))
    n_pairs = (pos | neg).sum().clamp(min=1)
    return cost.sum() / n_pairs


def triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.2) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al.) on cosine distance.

    For each anchor: its farthest same-person image and its nearest other-person image;
    cost `max(0, d_pos - d_neg + margin)`. Anchors without a same-person partner are skipped.

    Args:
        embeddings: `(B, d)`.
        labels: `(B,)` person ids; the batch should hold several images per person.
        margin: the gap wanted between the hardest positive and the hardest negative.
    """
    z = F.normalize(embeddings.float(), dim=1)
    d = 1 - z @ z.T  # (B, B)
    pos, neg = _pair_masks(labels)
    hardest_pos = torch.where(pos, d, torch.full_like(d, -1.0)).max(1).values
    hardest_neg = torch.where(neg, d, torch.full_like(d, 9.0)).min(1).values
    valid = pos.any(1) & neg.any(1)
    if not valid.any():
        raise FacespaceError(
            "triplet loss needs batches with at least two images of some person and two people; "
            "sample batches as P people x K images"
        )
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()
