"""The checkpoint format: round trip, and refusal of bad files."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from facespace.models.registry import _REGISTRY, load_model, register_model, save_model
from facespace.errors import CheckpointError, FacespaceError
from facespace.models.base import TorchAutoencoder


@dataclass(frozen=True)
class TinyConfig:
    size: int = 4
    channels: int = 1
    code_size: int = 3


@register_model
class Tiny(TorchAutoencoder):
    kind = "tiny-test"
    Config = TinyConfig

    def __init__(self, config: TinyConfig):
        super().__init__(config)
        n = config.size * config.size * config.channels
        self.enc = nn.Linear(n, config.code_size)
        self.dec = nn.Linear(config.code_size, n)

    def encode_tensor(self, x):
        return self.enc(x.flatten(1))

    def decode_tensor(self, z):
        c = self.config
        return self.dec(z).view(-1, c.channels, c.size, c.size)


@pytest.fixture
def tiny_path(tmp_path):
    torch.manual_seed(0)
    model = Tiny(TinyConfig())
    return model, save_model(model, tmp_path / "tiny.safetensors", step=7, best_val_loss=0.5, extra={"t": 1.5})


def test_round_trip_gives_identical_outputs(tiny_path, rng):
    model, path = tiny_path
    x = rng.random((5, 4, 4, 1), dtype=np.float32)
    loaded = load_model(path)
    assert np.array_equal(model.encode(x), loaded.encode(x))
    assert np.array_equal(model.decode(model.encode(x)), loaded.decode(loaded.encode(x)))
    info = loaded.checkpoint_info
    assert (info["step"], info["best_val_loss"], info["extra"]) == (7, 0.5, {"t": 1.5})
    assert len(info["hash"]) == 16


def test_truncated_file_is_refused(tiny_path):
    _, path = tiny_path
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(path)


def test_missing_foreign_and_wrong_kind(tiny_path, tmp_path):
    _, path = tiny_path
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.safetensors")
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_model(foreign)
    with pytest.raises(CheckpointError, match="not the 'conv' model"):
        load_model(path, kind="conv")


def test_newer_format_version_is_refused(tiny_path, tmp_path, monkeypatch):
    import facespace.checkpoint as ck

    model, _ = tiny_path
    monkeypatch.setattr(ck, "FORMAT_VERSION", 99)
    newer = save_model(model, tmp_path / "newer.safetensors")
    monkeypatch.setattr(ck, "FORMAT_VERSION", 1)
    with pytest.raises(CheckpointError, match="newer"):
        load_model(newer)


def test_wrong_image_shape_and_nan_are_refused(tiny_path):
    model, _ = tiny_path
    with pytest.raises(FacespaceError, match=r"model takes \(4, 4, 1\)"):
        model.encode(np.zeros((2, 8, 8, 1), np.float32))
    bad = np.zeros((1, 4, 4, 1), np.float32)
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(FacespaceError, match="NaN"):
        model.encode(bad)


def test_registry_keeps_test_kind():
    assert _REGISTRY["tiny-test"] is Tiny


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    import numpy as np

    from facespace.errors import CheckpointError
    from facespace.models.pca import PCAAutoencoder

    pca = PCAAutoencoder(code_size=2).fit(np.random.default_rng(0).random((10, 4, 4, 1), dtype=np.float32))
    save_model(pca, tmp_path / "ok.safetensors")
    name, tensor = next(iter(pca.state_tensors().items()))
    tensor.view(-1)[0] = float("nan")
    save_model(pca, tmp_path / "nan.safetensors")
    load_model(tmp_path / "ok.safetensors")
    with pytest.raises(CheckpointError, match=f"its weights '{name}' hold NaN"):
        load_model(tmp_path / "nan.safetensors")
