"""The convolutional autoencoder: shapes for every code size, the seed's layers, checkpoints."""

import numpy as np
import pytest
import torch
from torch import nn

from facespace.models.registry import load_model, save_model
from facespace.errors import CheckpointError, FacespaceError
from facespace.models.conv import ConvAutoencoder, ConvConfig
from facespace.models.pca import PCAAutoencoder
from facespace.protocol import Autoencoder


@pytest.mark.parametrize("code_size", [1, 8, 32, 128, 512])
def test_any_code_size_gives_codes_of_that_size_and_images_of_the_input_shape(code_size, rng):
    net = ConvAutoencoder(ConvConfig(size=32, channels=3, code_size=code_size))
    x = rng.random((2, 32, 32, 3), dtype=np.float32)
    z = net.encode(x)
    assert z.shape == (2, code_size) and z.dtype == np.float32
    assert net.decode(z).shape == x.shape


@pytest.mark.parametrize("arch,size,channels",
                         [("seed", 16, 1), ("seed", 48, 3), ("bn", 16, 1), ("bn", 64, 3), ("res", 16, 1), ("res", 48, 3)])
def test_sizes_divisible_by_16_and_one_or_three_channels(arch, size, channels, rng):
    net = ConvAutoencoder(ConvConfig(size=size, channels=channels, code_size=5, arch=arch, depth=2))
    x = rng.random((2, size, size, channels), dtype=np.float32)
    assert net.decode(net.encode(x)).shape == x.shape
    assert isinstance(net, Autoencoder)


def test_seed_architecture_is_the_courses():
    net = ConvAutoencoder(ConvConfig(size=32, channels=3, code_size=32))
    convs = [m for m in net.encoder if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.encoder) == 4
    ups = [m for m in net.decoder if isinstance(m, nn.ConvTranspose2d)]
    assert [u.out_channels for u in ups] == [128, 64, 32, 3] and all(u.stride == (2, 2) for u in ups)
    assert not isinstance(net.decoder[-1], nn.ReLU)  # the last layer is linear
    assert (net.to_code.in_features, net.from_code.out_features) == (256 * 2 * 2, 256 * 2 * 2)
    # ReLU code by default: codes are never negative; a linear code can be
    x = torch.rand(8, 3, 32, 32)
    assert (net.encode_tensor(x) >= 0).all()
    torch.manual_seed(0)
    lin = ConvAutoencoder(ConvConfig(size=32, code_size=32, code_activation="linear"))
    assert (lin.encode_tensor(x) < 0).any()


def test_seed_is_initialised_as_keras_does():
    """Glorot-uniform weights (bound sqrt(6 / (fan_in + fan_out)), spread over it) and zero biases."""
    torch.manual_seed(0)
    net = ConvAutoencoder(ConvConfig(size=32, channels=3, code_size=32))
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    assert len(layers) == 10
    for m in layers:
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
        bound = (6 / (fan_in + fan_out)) ** 0.5
        w = m.weight.detach().abs()
        assert w.max() <= bound and w.max() > 0.9 * bound, m
        assert (m.bias == 0).all(), m
    # the improved archs keep PyTorch's own initialisation (their biases are not zero)
    bn = ConvAutoencoder(ConvConfig(size=32, code_size=32, arch="bn"))
    assert (bn.to_code.bias != 0).any()


def test_transposed_convolution_doubles_the_side_exactly():
    net = ConvAutoencoder(ConvConfig(size=32, channels=3, code_size=4))
    h = torch.zeros(1, 256, 2, 2)
    sides = []
    for m in net.decoder:
        h = m(h)
        if isinstance(m, nn.ConvTranspose2d):
            sides.append(h.shape[-1])
    assert sides == [4, 8, 16, 32]


def test_bad_configs_are_refused_with_the_fix():
    with pytest.raises(FacespaceError, match="multiple of 16"):
        ConvAutoencoder(ConvConfig(size=30))
    with pytest.raises(FacespaceError, match="channels"):
        ConvAutoencoder(ConvConfig(channels=2))
    with pytest.raises(FacespaceError, match="unknown arch 'big'; expected one of: seed, bn, res"):
        ConvAutoencoder(ConvConfig(arch="big"))
    with pytest.raises(FacespaceError, match="code_activation"):
        ConvAutoencoder(ConvConfig(code_activation="tanh"))
    with pytest.raises(FacespaceError, match="refine_steps must be >= 0"):
        ConvAutoencoder(ConvConfig(refine_steps=-1))


def test_wrong_image_shape_is_refused_saying_which(rng):
    net = ConvAutoencoder(ConvConfig(size=16, channels=3, code_size=4))
    with pytest.raises(FacespaceError, match=r"\(32, 32, 3\) but the model takes \(16, 16, 3\)"):
        net.encode(rng.random((1, 32, 32, 3), dtype=np.float32))
    with pytest.raises(FacespaceError, match="grayscale=False"):
        net.encode(rng.random((1, 16, 16, 1), dtype=np.float32))


def test_pca_skip_starts_as_pca_and_survives_a_reload(rng, tmp_path):
    x = rng.random((80, 16, 16, 3), dtype=np.float32)
    pca = PCAAutoencoder(code_size=6).fit(x)
    torch.manual_seed(0)
    net = ConvAutoencoder(ConvConfig(size=16, channels=3, code_size=6, arch="bn", code_activation="linear", pca_skip=True))
    net.init_from_pca(pca)
    # the conv decoder starts at zero and the conv code near it: the model is PCA at the start
    np.testing.assert_allclose(net.decode(pca.encode(x)), pca.decode(pca.encode(x)), atol=1e-5)
    np.testing.assert_allclose(net.encode(x), pca.encode(x), atol=0.05)
    loaded = load_model(save_model(net, tmp_path / "skip.safetensors"))
    assert np.array_equal(loaded.encode(x), net.encode(x))
    with pytest.raises(FacespaceError, match="fit PCA on the same images"):
        net.init_from_pca(PCAAutoencoder(code_size=3).fit(x))


@pytest.mark.parametrize("arch", ["seed", "bn", "res"])
def test_save_load_round_trip_is_identical(arch, rng, tmp_path):
    torch.manual_seed(0)
    net = ConvAutoencoder(ConvConfig(size=16, channels=1, code_size=3, arch=arch))
    net.train()
    net(torch.rand(4, 1, 16, 16))  # move batch-norm running statistics off their defaults
    path = save_model(net, tmp_path / "conv.safetensors", step=3, best_val_loss=0.25)
    loaded = load_model(path, kind="conv")
    x = rng.random((3, 16, 16, 1), dtype=np.float32)
    assert np.array_equal(loaded.encode(x), net.encode(x))
    assert np.array_equal(loaded.decode(net.encode(x)), net.decode(net.encode(x)))
    assert loaded.config == net.config and loaded.checkpoint_info["best_val_loss"] == 0.25
    with pytest.raises(CheckpointError, match="not the 'pca'"):
        load_model(path, kind="pca")


def test_truncated_conv_checkpoint_is_refused(tmp_path):
    path = save_model(ConvAutoencoder(ConvConfig(size=16, channels=1, code_size=3)), tmp_path / "c.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(path)


@pytest.mark.parametrize("code_size", [1, 32, 512])
def test_res_arch_gives_codes_of_any_size_and_images_of_the_input_shape(code_size, rng):
    net = ConvAutoencoder(ConvConfig(size=32, channels=3, code_size=code_size, arch="res", width=4))
    x = rng.random((2, 32, 32, 3), dtype=np.float32)
    assert net.encode(x).shape == (2, code_size) and net.decode(net.encode(x)).shape == x.shape


def _fitted_small_net(rng, refine_steps=0):
    """A res net trained a little on smooth random images, so its decoder means something."""
    torch.manual_seed(0)
    net = ConvAutoencoder(ConvConfig(size=16, channels=1, code_size=4, arch="res", width=4, code_activation="linear"))
    x = torch.from_numpy(rng.random((64, 1, 4, 4), dtype=np.float32)).repeat_interleave(4, 2).repeat_interleave(4, 3)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(30):
        loss, _ = net.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    return net, x.numpy().transpose(0, 2, 3, 1)


def test_refining_codes_lowers_the_reconstruction_error_of_every_batch_and_keeps_the_code_size(rng, tmp_path):
    import dataclasses

    net, x = _fitted_small_net(rng)
    plain = net.decode(net.encode(x))
    net.config = dataclasses.replace(net.config, refine_steps=25)
    z = net.encode(x)
    refined = net.decode(z)
    assert z.shape == (len(x), 4)
    assert ((refined - x) ** 2).mean() < 0.9 * ((plain - x) ** 2).mean()
    # each image's code is refined on its own error: alone or in a batch, the same code
    np.testing.assert_allclose(net.encode(x[5:6]), z[5:6], rtol=1e-4, atol=1e-5)
    # the setting travels with the checkpoint; training and validation never refine
    loaded = load_model(save_model(net, tmp_path / "refine.safetensors"))
    assert loaded.config.refine_steps == 25
    np.testing.assert_allclose(loaded.encode(x[:3]), z[:3], rtol=1e-4, atol=1e-5)
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        assert torch.equal(net(xt), net.decode_tensor(net._amortized(xt)))
