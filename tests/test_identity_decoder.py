"""The decoder of identity codes: a frozen encoder named in the config, a trained decoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facespace.models.identity_decoder import IdentityAutoencoder, IdentityDecoderConfig
from facespace.models.registry import load_model, save_model
from facespace.protocol import Autoencoder
from facespace.training.loop import TrainConfig, fit

# a stand-in identity model that needs no extra: raw 8x8 pixels (192 numbers)
CONFIG = IdentityDecoderConfig(encoder="pixels:8", code_size=192, size=16, out_size=8, width=4)


def test_it_honours_the_autoencoder_contract_and_round_trips(tmp_path):
    torch.manual_seed(0)
    ae = IdentityAutoencoder(CONFIG)
    assert isinstance(ae, Autoencoder) and ae.image_shape == (8, 8, 3)
    x = np.random.default_rng(0).random((5, 8, 8, 3), dtype=np.float32)
    z = ae.encode(x)
    assert z.shape == (5, 192) and np.allclose(z, x.reshape(5, -1))  # the frozen encoder's codes
    y = ae.decode(z)
    assert y.shape == (5, 8, 8, 3) and (y >= 0).all() and (y <= 1).all()
    path = save_model(ae, tmp_path / "ae.safetensors")
    again = load_model(path)
    assert isinstance(again, IdentityAutoencoder)
    assert np.allclose(again.decode(z), y, atol=1e-6)


def test_training_the_decoder_lowers_its_error():
    rng = np.random.default_rng(0)
    faces = rng.random((64, 3, 16, 16)).astype(np.float32)
    faces[:, :, 4:12, 4:12] = 0.9  # a shared structure the decoder can learn
    codes = rng.normal(size=(64, 192)).astype(np.float32)
    data = torch.utils.data.TensorDataset(torch.from_numpy(codes), torch.from_numpy(faces))
    torch.manual_seed(0)
    ae = IdentityAutoencoder(CONFIG)
    with torch.no_grad():
        before = float(ae.loss((torch.from_numpy(codes), torch.from_numpy(faces)))[0])
    fit(ae, data, None, TrainConfig(epochs=15, batch_size=16, lr=5e-3), progress=False)
    ae.eval()
    with torch.no_grad():
        after = float(ae.loss((torch.from_numpy(codes), torch.from_numpy(faces)))[0])
    assert after < 0.7 * before


def test_a_bad_size_is_refused():
    from facespace.errors import FacespaceError

    with pytest.raises(FacespaceError, match="power of two"):
        IdentityAutoencoder(IdentityDecoderConfig(size=48))


def test_an_adapted_model_round_trips_and_gives_unit_codes(tmp_path):
    from facespace.models.adapted import AdaptedConfig, AdaptedEncoder
    from facespace.protocol import is_aligning

    rng = np.random.default_rng(0)
    m = AdaptedEncoder(AdaptedConfig(base="pixels:4:grey", code_size=5), rng.normal(size=16) * 0.01,
                       rng.normal(size=(16, 5)))
    x = rng.random((3, 4, 4, 1), dtype=np.float32)
    z = m.encode(x)
    assert z.shape == (3, 5) and np.allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    assert not is_aligning(m)  # raw pixels cut no faces of their own
    again = load_model(save_model(m, tmp_path / "a.safetensors"))
    assert np.allclose(again.encode(x), z, atol=1e-6)
