"""The variational autoencoder: posterior, ELBO terms, sampling, checkpoints, a short training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facespace.models.registry import load_model, save_model
from facespace.errors import FacespaceError
from facespace.models.vae import VAE, VAEConfig


def small(**kw) -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(size=16, channels=3, code_size=4, width=4, **kw)).eval()


def test_encode_is_the_posterior_mean_and_deterministic(rng):
    vae = small()
    x = rng.random((5, 16, 16, 3), dtype=np.float32)
    z = vae.encode(x)
    assert z.shape == (5, 4) and z.dtype == np.float32
    with torch.no_grad():
        mu, logvar = vae.posterior(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(z, mu.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(vae.encode(x), z)
    assert vae.decode(z).shape == (5, 16, 16, 3)


def _pin_posterior(vae: VAE, mean: float, var: float) -> None:
    """Make q(z|x) = N(mean, var I) for every input: zero weights, constant biases."""
    with torch.no_grad():
        for head, bias in ((vae.backbone.to_code, mean), (vae.to_logvar, math.log(var))):
            head.weight.zero_()
            head.bias.fill_(bias)


def test_kl_known_answers(rng):
    x = torch.from_numpy(rng.random((3, 3, 16, 16), dtype=np.float32))
    vae = small(beta=0.5)
    _pin_posterior(vae, 0.0, 1.0)  # the posterior is the prior
    loss, metrics = vae.loss(x)
    assert metrics["kl"] == pytest.approx(0.0, abs=1e-6)
    assert float(loss.detach()) == pytest.approx(metrics["mse"], rel=1e-5)
    _pin_posterior(vae, 1.0, 4.0)  # per dimension: (mu^2 + var - 1 - log var) / 2
    loss, metrics = vae.loss(x)
    assert metrics["kl"] == pytest.approx(4 * 0.5 * (1 + 4 - 1 - math.log(4)), rel=1e-5)
    pixels = 3 * 16 * 16
    assert float(loss.detach()) == pytest.approx(metrics["mse"] + 0.5 * metrics["kl"] / pixels, rel=1e-5)


def test_loss_noise_follows_the_generator(rng):
    vae = small()
    x = torch.from_numpy(rng.random((4, 3, 16, 16), dtype=np.float32))
    a = vae.loss(x, generator=torch.Generator().manual_seed(1))[1]
    b = vae.loss(x, generator=torch.Generator().manual_seed(1))[1]
    c = vae.loss(x, generator=torch.Generator().manual_seed(2))[1]
    assert a == b and a["mse"] != c["mse"]
    terms = vae.elbo_terms(x.numpy().transpose(0, 2, 3, 1), seed=3)
    assert terms == vae.elbo_terms(x.numpy().transpose(0, 2, 3, 1), seed=3)
    assert set(terms) == {"loss", "mse", "kl", "mean_mse"} and terms["kl"] >= 0


def test_sample_is_seeded():
    vae = small()
    a, b, c = vae.sample(6, seed=1), vae.sample(6, seed=1), vae.sample(6, seed=2)
    assert a.shape == (6, 16, 16, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # temperature 0 decodes the prior's mean, the zero code, for every draw
    np.testing.assert_allclose(vae.sample(3, seed=5, temperature=0.0), vae.decode(np.zeros((3, 4), np.float32)))


def test_bad_config_and_arguments():
    with pytest.raises(FacespaceError, match="beta"):
        VAE(VAEConfig(size=16, code_size=4, beta=0.0))
    with pytest.raises(FacespaceError, match="multiple of 16"):
        VAE(VAEConfig(size=20, code_size=4))
    vae = small()
    with pytest.raises(FacespaceError, match="number of samples"):
        vae.sample(0)
    with pytest.raises(FacespaceError, match="temperature"):
        vae.sample(2, temperature=-1.0)


def test_save_load_round_trip(tmp_path, rng):
    vae = small(beta=0.3)
    x = rng.random((3, 16, 16, 3), dtype=np.float32)
    path = save_model(vae, tmp_path / "vae.safetensors", extra={"code_std": [1.0] * 4})
    back = load_model(path, kind="vae")
    assert isinstance(back, VAE) and back.config == vae.config
    np.testing.assert_array_equal(back.encode(x), vae.encode(x))
    np.testing.assert_array_equal(back.sample(4, seed=7), vae.sample(4, seed=7))
    assert back.checkpoint_info["extra"]["code_std"] == [1.0] * 4


def test_short_training_lowers_both_terms(rng):
    from facespace.training.loop import TrainConfig, fit

    # smooth synthetic "faces": a few blobs of random brightness, so there is structure to learn
    yy, xx = np.mgrid[0:16, 0:16] / 15.0
    w = rng.random((96, 3))
    x = (w[:, 0, None, None] * np.exp(-((xx - 0.3) ** 2 + (yy - 0.4) ** 2) / 0.05)
         + w[:, 1, None, None] * np.exp(-((xx - 0.7) ** 2 + (yy - 0.4) ** 2) / 0.05)
         + w[:, 2, None, None] * yy)  # fmt: skip
    x = np.repeat((x / x.max())[:, None], 3, axis=1).astype(np.float32)  # (n, 3, 16, 16)
    vae = small(beta=0.05).train()
    data = torch.from_numpy(x)
    before = vae.elbo_terms(x.transpose(0, 2, 3, 1), seed=0)
    result = fit(vae, data[:80], data[80:], TrainConfig(epochs=6, batch_size=16, lr=3e-3, threads=1),
                 progress=False)  # fmt: skip
    after = vae.elbo_terms(x.transpose(0, 2, 3, 1), seed=0)
    assert after["loss"] < 0.85 * before["loss"]
    assert after["mse"] < before["mse"]
    assert {"train_kl", "val_kl", "train_mse", "val_mse"} <= set(result.history[-1])
