"""The linear autoencoder, trained by gradient, reaches the closed-form PCA's error."""

import numpy as np
import pytest
import torch

from facespace.training.loop import TrainConfig, fit
from facespace.models.linear import LinearAutoencoder, LinearConfig
from facespace.models.pca import PCAAutoencoder
from facespace.training.objectives import Reconstruction


def low_rank_images(n=256, seed=0):
    """(n, 8, 8, 1) images: 4 strong directions over weak isotropic noise, around grey 0.5."""
    rng = np.random.default_rng(seed)
    axes, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    std = np.r_[[0.2, 0.17, 0.15, 0.13], np.full(60, 0.02)]
    return (0.5 + (rng.normal(size=(n, 64)) * std) @ axes.T).reshape(n, 8, 8, 1).astype(np.float32)


def test_gradient_trained_linear_autoencoder_reaches_pca_within_3_percent():
    x = low_rank_images()
    pca = PCAAutoencoder(code_size=4).fit(x)
    pca_mse = np.mean((pca.decode(pca.encode(x)) - x) ** 2)
    torch.manual_seed(0)
    net = LinearAutoencoder(LinearConfig(size=8, channels=1, code_size=4))
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    net.set_mean(xt)
    fit(Reconstruction(net), xt, xt, TrainConfig(epochs=200, batch_size=32, lr=1e-2, grad_clip=None, val_every=200),
        progress=False)
    lin_mse = np.mean((net.decode(net.encode(x)) - x) ** 2)
    assert lin_mse == pytest.approx(pca_mse, rel=0.03)
    assert lin_mse >= pca_mse * 0.999  # PCA is the optimum of every linear code of this size


def test_shapes_and_mean_offset():
    net = LinearAutoencoder(LinearConfig(size=4, channels=3, code_size=2))
    x = np.random.default_rng(0).random((3, 4, 4, 3), dtype=np.float32)
    assert net.encode(x).shape == (3, 2) and net.decode(net.encode(x)).shape == x.shape
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    net.set_mean(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    # with zero weights the model outputs the mean image whatever the input
    np.testing.assert_allclose(net.decode(net.encode(x))[0], x.mean(0), atol=1e-6)
