"""The deep convolutional autoencoder: the course's seed architecture and an improved one, by name.

`arch="seed"` is exactly the seed: encoder 4 x [Conv 3x3 same + ReLU, MaxPool 2x2] with
`width`, 2w, 4w, 8w channels (32, 64, 128, 256), Flatten, Dense(code_size) + code activation;
decoder Dense -> reshape (8w, size/16, size/16) -> 4 x ConvTranspose(3, stride 2) with 4w, 2w, w,
C channels, ReLU except the last, linear; initialised as Keras does (Glorot-uniform weights, zero
biases). `arch="bn"` adds batch norm and leaky ReLU, `depth`
convolutions per stage and a final 3x3 convolution. `arch="res"` is a residual network: 3 stages
(w, 2w, 4w, 8w channels, down to size/8) of `depth` pre-activation residual blocks (BN-SiLU-conv
3x3, twice, plus the input), strided 3x3 convolutions down and nearest-neighbour upsampling + 3x3
convolutions up. `refine_steps > 0` refines each code at encode time by Adam steps through the
frozen decoder (`facespace.models.refine`); training is unchanged. `pca_skip=True` adds a fixed linear PCA path
(`z = P(x - mu) + enc(x)`, `x_hat = mu + P^T z + dec(z)`) that the convolutional parts correct;
the code stays `code_size` long. The trainer fills the PCA path with `init_from_pca`.

Example:
    >>> net = ConvAutoencoder(ConvConfig(size=32, channels=3, code_size=8))
    >>> net.encode(np.zeros((2, 32, 32, 3), np.float32)).shape
    (2, 8)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facespace.models.registry import register_model
from facespace.errors import FacespaceError
from facespace.models.base import TorchAutoencoder

ARCHS = ("seed", "bn", "res")
ACTIVATIONS = ("relu", "linear")


@dataclass(frozen=True)
class ConvConfig:
    size: int = 32  # image side, divisible by 16
    channels: int = 3  # 1 (grey) or 3 (RGB)
    code_size: int = 32  # length of a code
    arch: str = "seed"  # seed (the course's network) | bn (batch norm, leaky ReLU)
    code_activation: str = "relu"  # relu (the seed's) | linear
    width: int = 32  # channels of the first stage; doubled at each of the 4 stages
    depth: int = 1  # convolutions per stage (arch "bn" only; the seed has 1)
    pca_skip: bool = False  # a fixed PCA path that the conv net corrects
    refine_steps: int = 0  # encode: Adam steps on the code through the frozen decoder (0: the encoder alone)
    refine_lr: float = 0.03  # the step size of that refinement


def _keras_init(net: nn.Module) -> None:
    """Keras's defaults, as the seed was trained: Glorot-uniform weights and zero biases.

    PyTorch's default (Kaiming-uniform with a = sqrt(5), uniform biases) left the seed 5% behind
    Keras's test MSE after the same steps (0.0218 vs 0.0208 in the reconstruction benchmark's speed
    rows) and at 0.00850 after 25 epochs (0.00662 with this initialisation)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def _check(config: ConvConfig) -> None:
    problems = []
    if config.size < 16 or config.size % 16:
        problems.append(f"size {config.size} must be a multiple of 16 (load images with size=32 or 64)")
    if config.channels not in (1, 3):
        problems.append(f"channels {config.channels} must be 1 (grey) or 3 (RGB)")
    if config.code_size < 1:
        problems.append(f"code_size {config.code_size} must be >= 1")
    if config.arch not in ARCHS:
        problems.append(f"unknown arch {config.arch!r}; expected one of: {', '.join(ARCHS)}")
    if config.code_activation not in ACTIVATIONS:
        problems.append(f"unknown code_activation {config.code_activation!r}; expected one of: {', '.join(ACTIVATIONS)}")
    if config.width < 1 or config.depth < 1:
        problems.append("width and depth must be >= 1")
    if config.refine_steps < 0 or not config.refine_lr > 0:
        problems.append("refine_steps must be >= 0 and refine_lr > 0")
    if problems:
        raise FacespaceError("bad conv autoencoder config: " + "; ".join(problems))


def _up(cin: int, cout: int) -> nn.ConvTranspose2d:
    # kernel 3, stride 2, padding 1, output_padding 1: exactly twice the input side
    return nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]


class _Residual(nn.Module):
    """Pre-activation residual block `(B, c, H, W) -> (B, c, H, W)`: x + conv(SiLU(BN(conv(SiLU(BN(x))))))."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.BatchNorm2d(c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
                                  nn.BatchNorm2d(c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _residual_layers(c: int, w: int, depth: int) -> tuple[list[nn.Module], list[nn.Module]]:
    """Encoder and decoder layers of arch "res": 3 halvings with w, 2w, 4w, 8w channels."""
    ws = [w, 2 * w, 4 * w, 8 * w]
    enc: list[nn.Module] = [nn.Conv2d(c, w, 3, padding=1)]
    for i in range(3):
        enc += [_Residual(ws[i]) for _ in range(depth)] + [nn.Conv2d(ws[i], ws[i + 1], 3, stride=2, padding=1)]
    enc += [_Residual(ws[3]) for _ in range(depth)] + [nn.BatchNorm2d(ws[3]), nn.SiLU()]
    dec: list[nn.Module] = []
    for i in range(3, 0, -1):
        dec += [_Residual(ws[i]) for _ in range(depth)]
        dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ws[i], ws[i - 1], 3, padding=1)]
    dec += [_Residual(w) for _ in range(depth)] + [nn.BatchNorm2d(w), nn.SiLU(), nn.Conv2d(w, c, 3, padding=1)]
    return enc, dec


@register_model
class ConvAutoencoder(TorchAutoencoder):
    """Convolutional autoencoder on `(B, C, H, W)` tensors; see the module docstring."""

    kind = "conv"
    Config = ConvConfig

    def __init__(self, config: ConvConfig):
        super().__init__(config)
        _check(config)
        c, w, s = config.channels, config.width, config.size // (8 if config.arch == "res" else 16)
        widths = [w, 2 * w, 4 * w, 8 * w]
        self.bottom = (8 * w, s, s)  # (C, H, W) at the bottleneck
        flat = 8 * w * s * s
        enc: list[nn.Module] = []
        dec: list[nn.Module] = []
        cin = c
        if config.arch == "seed":
            for cout in widths:
                enc += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
                cin = cout
            ups = [4 * w, 2 * w, w, c]
            for i, cout in enumerate(ups):
                dec.append(_up(cin, cout))
                if i < len(ups) - 1:
                    dec.append(nn.ReLU(inplace=True))
                cin = cout
        elif config.arch == "res":
            enc, dec = _residual_layers(c, w, config.depth)
        else:
            for cout in widths:
                for _ in range(config.depth):
                    enc += _conv_bn(cin, cout)
                    cin = cout
                enc.append(nn.MaxPool2d(2))
            for cout in [4 * w, 2 * w, w, w]:
                dec += [_up(cin, cout), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
                cin = cout
                for _ in range(config.depth - 1):
                    dec += _conv_bn(cin, cout)
            dec.append(nn.Conv2d(cin, c, 3, padding=1))
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        self.to_code = nn.Linear(flat, config.code_size)
        self.from_code = nn.Linear(config.code_size, flat)
        self.decoder = nn.Sequential(*dec)
        if config.arch == "seed":
            _keras_init(self)
        if config.pca_skip:
            m = c * config.size * config.size
            # fixed (not trained) linear path; zeros until init_from_pca fills it
            self.register_buffer("skip_mean", torch.zeros(m))
            self.register_buffer("skip_components", torch.zeros(config.code_size, m))
            # start the corrections small, so the untrained model is PCA itself
            with torch.no_grad():
                self.to_code.weight.mul_(0.01)
                self.to_code.bias.zero_()
                last = self.decoder[-1]
                last.weight.zero_()
                last.bias.zero_()

    def init_from_pca(self, pca) -> "ConvAutoencoder":
        """Fill the PCA path from a fitted `PCAAutoencoder` of the same image shape and code size."""
        if not self.config.pca_skip:
            raise FacespaceError("this conv autoencoder has no PCA path; build it with pca_skip=True")
        if tuple(pca.image_shape) != self.image_shape or pca.code_size != self.code_size:
            raise FacespaceError(
                f"PCA of image {pca.image_shape}, code {pca.code_size} does not fit this network "
                f"(image {self.image_shape}, code {self.code_size}); fit PCA on the same images"
            )
        h, w, c = self.image_shape
        d = self.code_size
        comp = pca.components_.reshape(d, h, w, c).transpose(0, 3, 1, 2).reshape(d, -1)  # (H,W,C) -> (C,H,W) order
        mean = pca.mean_.reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
        with torch.no_grad():
            self.skip_components.copy_(torch.from_numpy(np.ascontiguousarray(comp)))
            self.skip_mean.copy_(torch.from_numpy(np.ascontiguousarray(mean)))
        return self

    def encode_tensor(self, x: torch.Tensor, refine: int | None = None) -> torch.Tensor:
        """`(B, C, H, W)` -> `(B, d)`; out of training, refined by `refine` steps (default: the config's)."""
        z = self._amortized(x)
        steps = self.config.refine_steps if refine is None else int(refine)
        if steps and not self.training:
            from facespace.models.refine import refine_codes

            z = refine_codes(self.decode_tensor, z, x, steps=steps, lr=self.config.refine_lr)
        return z

    def _amortized(self, x: torch.Tensor) -> torch.Tensor:
        z = self.to_code(self.encoder(x))  # (B, d)
        if self.config.code_activation == "relu":
            z = F.relu(z)
        if self.config.pca_skip:
            z = z + (x.flatten(1) - self.skip_mean) @ self.skip_components.T
        return z

    def decode_tensor(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_code(z).view(-1, *self.bottom)  # (B, 8w, s, s)
        y = self.decoder(h)  # (B, C, H, W)
        if self.config.pca_skip:
            y = y + (z @ self.skip_components + self.skip_mean).view(y.shape)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training and validation path: the encoder's code, never refined (refinement is for encode)."""
        return self.decode_tensor(self._amortized(x))

    def loss(self, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean squared reconstruction error of a `(B, C, H, W)` batch."""
        loss = F.mse_loss(self(batch), batch)
        return loss, {"mse": float(loss.detach())}
