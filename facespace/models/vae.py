"""The variational autoencoder: conv.py's convolutional backbone with a Gaussian posterior.

The encoder and decoder are those of `ConvAutoencoder` (arch "seed" or "bn", same widths and
depth); the code head is split into a mean head (the conv net's `to_code`) and a log-variance
head. Training draws `z = mu + sigma * eps` (the reparameterisation trick) and minimises, per image,

    loss = (sum of squared pixel errors + beta * KL(q(z|x) || N(0, I))) / pixels

which is the negative ELBO of a Gaussian decoder of variance `beta / 2`, scaled to be comparable
with a plain autoencoder's per-pixel MSE. Small `beta` gives sharper reconstructions but a
posterior further from the prior (worse samples); large `beta` the reverse.

`encode` returns the posterior mean, so search, clustering and morphing use the VAE like any
autoencoder; `sample(n, seed)` decodes draws from the prior.

Example:
    >>> vae = VAE(VAEConfig(size=16, channels=1, code_size=4))
    >>> vae.encode(np.zeros((2, 16, 16, 1), np.float32)).shape
    (2, 4)
    >>> vae.sample(3, seed=0).shape
    (3, 16, 16, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from facespace.models.registry import register_model
from facespace.errors import FacespaceError
from facespace.models.base import TorchAutoencoder, to_tensor
from facespace.protocol import check_images
from facespace.models.conv import ConvAutoencoder, ConvConfig

LOGVAR_RANGE = (-12.0, 8.0)  # clamp: keeps exp(logvar) finite early in training


@dataclass(frozen=True)
class VAEConfig:
    size: int = 32  # image side, divisible by 16
    channels: int = 3  # 1 (grey) or 3 (RGB)
    code_size: int = 32  # length of a code (latent dimensions)
    arch: str = "bn"  # backbone of conv.py: seed | bn
    width: int = 32  # channels of the first stage; doubled at each of the 4 stages
    depth: int = 1  # convolutions per stage (arch "bn" only)
    beta: float = 0.1  # weight of the KL term against the summed squared error of an image


@register_model
class VAE(TorchAutoencoder):
    """Variational autoencoder on `(B, C, H, W)` tensors; see the module docstring.

    Args:
        config: a `VAEConfig`.

    Attributes:
        backbone: the `ConvAutoencoder` whose encoder, mean head (`to_code`) and decoder are used.
        to_logvar: `(flat,) -> (d,)` log-variance head.
    """

    kind = "vae"
    Config = VAEConfig

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        if not (np.isfinite(config.beta) and config.beta > 0):
            raise FacespaceError(f"beta must be a positive number (e.g. 0.1); got {config.beta}")
        self.backbone = ConvAutoencoder(
            ConvConfig(
                size=config.size, channels=config.channels, code_size=config.code_size, arch=config.arch,
                code_activation="linear", width=config.width, depth=config.depth, pca_skip=False,
            )
        )  # fmt: skip
        flat = self.backbone.to_code.in_features
        self.to_logvar = nn.Linear(flat, config.code_size)
        with torch.no_grad():  # start with small, nearly equal posterior variances
            self.to_logvar.weight.mul_(0.1)
            self.to_logvar.bias.fill_(-2.0)

    # --- tensors ------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, C, H, W)` -> mean `(B, d)` and log-variance `(B, d)` of q(z | x)."""
        h = self.backbone.encoder(x)  # (B, flat)
        logvar = self.to_logvar(h).clamp(*LOGVAR_RANGE)
        return self.backbone.to_code(h), logvar

    def encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def decode_tensor(self, z: torch.Tensor) -> torch.Tensor:
        return self.backbone.decode_tensor(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction: decode the posterior mean."""
        return self.decode_tensor(self.encode_tensor(x))

    def loss(
        self, batch: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Negative ELBO of a `(B, C, H, W)` batch, per pixel; see the module docstring.

        Args:
            batch: images in [0, 1].
            generator: source of the reparameterisation noise (torch's global one when None).

        Returns:
            `(loss, {"mse": per-pixel squared error of the sampled reconstruction,
            "kl": KL divergence in nats per image})`.
        """
        mu, logvar = self.posterior(batch)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps  # (B, d)
        x_hat = self.decode_tensor(z)
        pixels = batch[0].numel()
        se = (x_hat.float() - batch.float()).pow(2).flatten(1).sum(1).mean()  # per image
        kl = 0.5 * (mu.float().pow(2) + logvar.float().exp() - 1.0 - logvar.float()).sum(1).mean()
        loss = (se + self.config.beta * kl) / pixels
        return loss, {"mse": float(se.detach()) / pixels, "kl": float(kl.detach())}

    # --- numpy ----------------------------------------------------------------------------
    @torch.no_grad()
    def elbo_terms(self, images: np.ndarray, *, seed: int = 0, batch_size: int = 256) -> dict[str, float]:
        """Mean ELBO terms over `(n, H, W, C)` images, with seeded posterior draws.

        Returns:
            `{"loss", "mse", "kl"}` as in `loss`, averaged over the images, plus `"mean_mse"`: the
            per-pixel squared error of decoding the posterior mean (what `reconstruct` gives,
            before clipping).
        """
        x = check_images(images, self.image_shape)
        g = torch.Generator().manual_seed(int(seed))
        was_training = self.training
        self.eval()
        sums = {"loss": 0.0, "mse": 0.0, "kl": 0.0, "mean_mse": 0.0}
        try:
            for i in range(0, len(x), batch_size):
                t = to_tensor(x[i : i + batch_size]).to(self.device)
                loss, metrics = self.loss(t, generator=g)
                sums["loss"] += float(loss) * len(t)
                sums["mse"] += metrics["mse"] * len(t)
                sums["kl"] += metrics["kl"] * len(t)
                sums["mean_mse"] += float((self(t) - t).pow(2).mean()) * len(t)
        finally:
            self.train(was_training)
        return {k: v / max(len(x), 1) for k, v in sums.items()}

    def sample(self, n: int, seed: int = 0, *, temperature: float = 1.0) -> np.ndarray:
        """Decode `n` draws from the prior N(0, temperature^2 I).

        Returns:
            `(n, H, W, C)` float32 (not clipped), the same for the same seed.
        """
        if int(n) < 1:
            raise FacespaceError(f"number of samples must be >= 1; got {n}")
        if not (np.isfinite(temperature) and temperature >= 0):
            raise FacespaceError(f"temperature must be a number >= 0 (1 is the prior); got {temperature}")
        g = torch.Generator().manual_seed(int(seed))
        z = torch.randn(int(n), self.code_size, generator=g) * float(temperature)
        return self.decode(z.numpy())
