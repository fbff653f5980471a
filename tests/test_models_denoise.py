"""Corruptions and the denoising objective that wraps a network."""

import numpy as np
import pytest
import torch

from facespace.data.corruptions import Corruption, occluder_mask, parse_corruption
from facespace.errors import FacespaceError
from facespace.models.conv import ConvAutoencoder, ConvConfig
from facespace.training.objectives import Denoising, Reconstruction


def test_parse_specs_round_trip():
    assert parse_corruption("gaussian:0.1") == Corruption(sigma=0.1)
    c = parse_corruption("gaussian:0.05+rect:2:0.4")
    assert (c.sigma, c.rectangles, c.max_side) == (0.05, 2, 0.4)
    assert parse_corruption(c.spec()) == c
    assert parse_corruption("none").is_identity
    for bad in ("gaussian", "blur:3", "rect:x"):
        with pytest.raises(FacespaceError, match="expected e.g. 'gaussian:0.1'"):
            parse_corruption(bad)
    with pytest.raises(FacespaceError, match="sigma must be"):
        parse_corruption("gaussian:-1")


def test_gaussian_noise_has_the_asked_sigma_and_is_seeded():
    x = np.full((50, 16, 16, 3), 0.5, np.float32)
    noisy = Corruption(sigma=0.1).apply(x, seed=3)
    assert np.std(noisy - x) == pytest.approx(0.1, rel=0.02)
    assert abs(np.mean(noisy - x)) < 0.002
    assert np.array_equal(noisy, Corruption(sigma=0.1).apply(x, seed=3))
    assert not np.array_equal(noisy, Corruption(sigma=0.1).apply(x, seed=4))
    assert np.all(x == 0.5)  # the input is untouched


def test_rectangles_fill_boxes_within_the_size_limit():
    g = torch.Generator().manual_seed(0)
    mask = occluder_mask(200, 20, 20, 1, 0.5, g)
    for m in mask:
        rows, cols = np.nonzero(m.numpy())
        assert len(rows) > 0
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert h * w == len(rows) and h <= 10 and w <= 10  # one solid box, at most half a side
    x = np.ones((4, 20, 20, 1), np.float32)
    out = Corruption(rectangles=2, fill=0.0).apply(x, seed=1)
    assert set(np.unique(out)) == {0.0, 1.0} and (out == 0).any(axis=(1, 2, 3)).all()


def test_denoising_corrupts_each_batch_afresh_and_scores_against_the_clean_batch():
    class Identity(torch.nn.Module):
        def forward(self, x):
            return x

    clean = torch.rand(64, 3, 8, 8)
    objective = Denoising(Identity(), "gaussian:0.1")
    torch.manual_seed(0)
    first, _ = objective.loss(clean)
    second, _ = objective.loss(clean)
    # an identity "denoiser" scores the noise itself: about sigma squared, different each batch
    assert float(first) == pytest.approx(0.01, rel=0.1) and float(first) != float(second)
    assert float(Reconstruction(Identity()).loss(clean)[0]) == 0.0


def test_flips_only_while_training():
    objective = Reconstruction(torch.nn.Identity(), flip=True)
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    torch.manual_seed(0)
    flipped = (objective.clean(x) != x).flatten(1).any(1).float().mean()
    assert 0.25 < float(flipped) < 0.75
    objective.eval()
    assert torch.equal(objective.clean(x), x)


def test_the_network_inside_knows_nothing_of_noise():
    net = ConvAutoencoder(ConvConfig(size=16, channels=1, code_size=4))
    objective = Denoising(net, "gaussian:0.2+rect:1")
    assert objective.network is net and not hasattr(net, "corruption")
    x = torch.rand(2, 1, 16, 16)
    net.eval()
    assert torch.equal(net(x), net(x))  # deterministic: no noise inside the network
