"""Refine codes by gradient descent through a frozen decoder (semi-amortized encoding).

An encoder network gives a good first guess `z0 = enc(x)` in one pass, but not the code that the
decoder reconstructs best. A few Adam steps on `z` alone, lowering `||dec(z) - x||^2` with the
decoder's weights fixed, close much of that gap (Kim et al. 2018, "Semi-Amortized Variational
Autoencoders"; Marino et al. 2018, "Iterative Amortized Inference"). The code keeps its length.
Each image's code is refined on its own error only, and batch norm is in eval mode, so a code does
not depend on the other images in the batch.

Example:
    >>> import torch
    >>> dec = torch.nn.Linear(2, 4)
    >>> x = dec(torch.tensor([[1.0, -2.0]])).detach()
    >>> z = refine_codes(dec, torch.zeros(1, 2), x, steps=300, lr=0.05)
    >>> bool(((dec(z) - x) ** 2).sum() < 1e-4)
    True
"""

from __future__ import annotations

from typing import Callable

import torch


def refine_codes(
    decode: Callable[[torch.Tensor], torch.Tensor],
    z0: torch.Tensor,
    x: torch.Tensor,
    *,
    steps: int,
    lr: float = 0.03,
) -> torch.Tensor:
    """Lower the reconstruction error of codes `z0` `(B, d)` for targets `x` `(B, ...)` by Adam on `z`.

    Args:
        decode: maps `(B, d)` codes to outputs shaped like `x`; its weights are not changed.
        z0: starting codes `(B, d)`.
        x: the images the codes should reconstruct, `(B, C, H, W)`.
        steps: Adam steps (0 returns `z0`).
        lr: Adam's step size on the codes.

    Returns:
        Refined codes `(B, d)`, detached.
    """
    z = z0.detach().clone()
    if steps <= 0:
        return z
    x = x.detach()
    with torch.enable_grad():
        z.requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(int(steps)):
            # a sum, not a mean: each code's gradient is its own image's error, whatever the batch
            loss = ((decode(z) - x) ** 2).sum()
            (grad,) = torch.autograd.grad(loss, z)
            z.grad = grad
            opt.step()
    return z.detach()
