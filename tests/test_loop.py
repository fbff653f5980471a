"""The generic training loop: determinism, optimizers, schedules, early stopping, clipping,
checkpoints and the run folder, opaque batches, and stopping on NaN or divergence."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from facespace.models.registry import load_model, register_model
from facespace.errors import FacespaceError
from facespace.training.loop import FitResult, TrainConfig, fit
from facespace.models.base import TorchAutoencoder
from facespace.training.runs import read_metrics, reconstruction_sampler


@dataclass(frozen=True)
class TinyConfig:
    size: int = 8
    channels: int = 1
    code_size: int = 4
    conv: bool = False
    noise: float = 0.0  # Gaussian noise on the input in `loss`: randomness inside the loop


@register_model
class TinyAE(TorchAutoencoder):
    """A linear autoencoder (or a one-conv one) small enough to train in milliseconds."""

    kind = "tiny-loop"
    Config = TinyConfig

    def __init__(self, config: TinyConfig):
        super().__init__(config)
        c = config
        self.pre = nn.Conv2d(c.channels, c.channels, 3, padding=1) if c.conv else nn.Identity()
        n = c.size * c.size * c.channels
        self.enc = nn.Linear(n, c.code_size)
        self.dec = nn.Linear(c.code_size, n)

    def encode_tensor(self, x):
        return self.enc(self.pre(x).flatten(1))

    def decode_tensor(self, z):
        c = self.config
        return self.dec(z).view(-1, c.channels, c.size, c.size)

    def loss(self, x):
        noisy = x + self.config.noise * torch.randn_like(x) if self.config.noise else x
        mse = ((self.decode_tensor(self.encode_tensor(noisy)).float() - x) ** 2).mean()
        return mse, {"mse": mse.item()}


def make_model(seed: int = 0, **config) -> TinyAE:
    torch.manual_seed(seed)
    return TinyAE(TinyConfig(**config))


def low_rank_images(n: int, seed: int = 0, rank: int = 3, size: int = 8) -> torch.Tensor:
    """`(n, 1, size, size)` images in [0, 1] spanned by `rank` patterns: a linear AE can learn them."""
    g = np.random.default_rng(seed)
    basis = g.random((rank, size * size))
    x = g.random((n, rank)) @ basis / rank
    return torch.from_numpy(x.reshape(n, 1, size, size).astype(np.float32))


@pytest.fixture(scope="module")
def data():
    x = low_rank_images(240)
    return x[:192], x[192:]


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


QUICK = dict(epochs=3, batch_size=32, lr=1e-2)


def test_same_seed_and_data_give_identical_weights(data):
    train, val = data
    runs = []
    for seed in (7, 7, 8):
        model = make_model()
        fit(model, train, val, TrainConfig(**QUICK, seed=seed), progress=False)
        runs.append(weights(model))
    assert same(runs[0], runs[1])
    assert not same(runs[0], runs[2])  # the seed shuffles differently


@pytest.mark.parametrize("optimizer", ["adam", "adamax", "adamw"])
def test_each_optimizer_learns(data, optimizer):
    train, val = data
    model = make_model()
    config = TrainConfig(epochs=6, batch_size=32, lr=2e-2, optimizer=optimizer)
    result = fit(model, train, val, config, progress=False)
    assert isinstance(result, FitResult) and result.epochs_run == 6
    assert len(result.history) == 6
    assert result.history[-1]["val_loss"] < 0.3 * result.history[0]["val_loss"]
    assert result.best_val_loss == min(r["val_loss"] for r in result.history)
    assert result.best_path is None and result.last_path is None


def test_schedules_shape_the_learning_rate(data):
    train, _ = data
    lrs = {}
    for schedule in ("none", "onecycle", "cosine"):
        config = TrainConfig(epochs=5, batch_size=32, lr=0.01, schedule=schedule)
        r = fit(make_model(), train, None, config, progress=False)
        lrs[schedule] = [row["lr"] for row in r.history]
    assert lrs["none"] == [0.01] * 5
    cos = lrs["cosine"]
    assert all(a > b for a, b in zip(cos, cos[1:])) and cos[-1] < 1e-6
    one = lrs["onecycle"]  # warms up for 30% of the steps, then anneals to almost nothing
    assert max(one) > one[0] and one.index(max(one)) in (1, 2) and one[-1] < 1e-4


class Constant(nn.Module):
    """Predicts one number; the loss is its squared distance to the batch's mean."""

    def __init__(self):
        super().__init__()
        self.c = nn.Parameter(torch.zeros(()))

    def loss(self, x):
        return ((self.c - x) ** 2).mean(), {}


def test_early_stopping_keeps_the_best_epoch():
    # training pulls c towards 1 while the validation data sit at 0: validation only gets worse
    train, val = torch.ones(64, 1), torch.zeros(16, 1)
    result = fit(Constant(), train, val, TrainConfig(epochs=20, batch_size=16, lr=0.05, patience=3), progress=False)
    assert result.epochs_run == 4  # the best epoch, then three without improvement
    val_losses = [r["val_loss"] for r in result.history]
    assert result.best_val_loss == val_losses[0] < min(val_losses[1:])


def test_gradient_clipping_bounds_the_norm():
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    norms: list[float] = []

    def record(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    handle = register_optimizer_step_pre_hook(record)
    try:
        x = 100 * torch.ones(32, 1)  # far from c = 0: gradients of about 200
        fit(Constant(), x, None, TrainConfig(epochs=1, batch_size=8, grad_clip=0.5), progress=False)
        clipped, norms[:] = list(norms), []
        fit(Constant(), x, None, TrainConfig(epochs=1, batch_size=8, grad_clip=None), progress=False)
    finally:
        handle.remove()
    assert len(clipped) == 4 and max(clipped) <= 0.5 + 1e-5
    assert min(norms) > 100


def test_run_folder_and_checkpoints(data, tmp_path, capsys):
    train, val = data
    model = make_model()
    images = val.numpy().transpose(0, 2, 3, 1)  # (n, H, W, C)
    out = tmp_path / "run"
    result = fit(model, train, val, TrainConfig(**QUICK), out_dir=out, sample_fn=reconstruction_sampler(images, n=4))
    assert result.best_path == out / "best.safetensors" and result.last_path == out / "last.safetensors"

    last = load_model(result.last_path)
    assert last.kind == "tiny-loop" and last.checkpoint_info["step"] == 3 * 6  # 192 / 32 steps per epoch
    assert np.array_equal(last.encode(images), model.encode(images))
    best = load_model(out)  # a run folder loads its best checkpoint
    assert best.checkpoint_info["best_val_loss"] == pytest.approx(result.best_val_loss)

    rows = read_metrics(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["val_loss"]) == pytest.approx(result.history[-1]["val_loss"])
    assert {"train_loss", "train_mse", "val_mse", "lr", "seconds", "examples_per_s"} <= set(rows[0])
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["lr"] == 1e-2 and config["kind"] == "tiny-loop" and config["n_train"] == 192
    for png in ("loss.png", "samples.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob("*.tmp"))  # atomic writes leave no temporary files

    err = capsys.readouterr().err
    assert "epoch 1/3" in err and "epoch 3/3" in err and "val" in err


def test_samples_grid_has_originals_over_reconstructions(data, tmp_path):
    from PIL import Image

    train, val = data
    images = val.numpy().transpose(0, 2, 3, 1)
    fit(make_model(), train, val, TrainConfig(epochs=1), out_dir=tmp_path, progress=False,
        sample_fn=reconstruction_sampler(images, n=5))
    w, h = Image.open(tmp_path / "samples.png").size
    tile = 8 * 2 + 2  # scale 2, pad 2
    assert (w, h) == (5 * tile + 2, 2 * tile + 2)


def test_channels_last_and_bf16_train(data):
    train, val = data
    model = make_model(conv=True)
    config = TrainConfig(epochs=4, batch_size=32, lr=2e-2, channels_last=True, bf16=True)
    result = fit(model, train, val, config, progress=False)
    assert result.history[-1]["val_loss"] < 0.5 * result.history[0]["train_loss"]
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())


def test_batches_are_opaque_to_the_loop():
    """Variable-length sequences padded by a collate_fn reach `loss` as the model built them."""
    seqs = [torch.full((n,), float(n)) for n in range(1, 21)]
    seen = []

    def pad(items):
        lengths = [len(s) for s in items]
        out = torch.zeros(len(items), max(lengths))
        for i, s in enumerate(items):
            out[i, : len(s)] = s
        return {"seq": out, "lengths": lengths}

    class MeanOfSequences(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Parameter(torch.zeros(()))

        def loss(self, batch):
            seen.append(batch["lengths"])
            means = batch["seq"].sum(1) / torch.tensor(batch["lengths"], dtype=torch.float32)
            return ((self.c - means) ** 2).mean(), {}

    model = MeanOfSequences()
    fit(model, seqs, None, TrainConfig(epochs=30, batch_size=8, lr=0.5, grad_clip=None), collate_fn=pad, progress=False)
    assert sorted(n for lengths in seen[:3] for n in lengths) == list(range(1, 21))  # epoch 1 saw each once
    assert model.c.item() == pytest.approx(10.5, abs=0.5)  # the mean of 1..20


def test_nan_input_stops_and_keeps_the_last_good_checkpoint(data, tmp_path):
    train, _ = data
    calls = {"n": 0}

    def poison_batch_8(items):
        calls["n"] += 1
        batch = torch.stack(items)
        if calls["n"] == 8:  # epoch 2, batch 2
            batch[0, 0, 0, 0] = float("nan")
        return batch

    with pytest.raises(FacespaceError, match=r"NaN or infinite values at step 8 \(epoch 2, batch 2\)"):
        fit(make_model(), train, None, TrainConfig(epochs=3, batch_size=32), out_dir=tmp_path,
            collate_fn=poison_batch_8, progress=False)
    last = load_model(tmp_path / "last.safetensors")
    assert last.checkpoint_info["step"] == 6 and last.checkpoint_info["extra"]["epoch"] == 1
    assert all(torch.isfinite(p).all() for p in last.parameters())
    assert len(read_metrics(tmp_path / "metrics.csv")) == 1


def test_diverging_loss_stops_with_the_step():
    class Cosh(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(0.5))

        def loss(self, x):
            return (torch.exp(self.w) + torch.exp(-self.w)) * x.mean(), {}

    # a learning rate of 100 throws w to about -100, where exp overflows float32
    with pytest.raises(FacespaceError, match=r"loss became inf at step 2 .*diverged; lower lr"):
        fit(Cosh(), torch.ones(16, 1), None, TrainConfig(epochs=1, batch_size=4, lr=100.0, grad_clip=None),
            progress=False)


def test_threads_option_sets_torch_threads(data):
    train, _ = data
    try:
        fit(make_model(), train[:32], None, TrainConfig(epochs=1, threads=2), progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(optimizer="sgd"), "unknown optimizer 'sgd'; expected one of: adam, adamax, adamw"),
        (dict(schedule="step"), "unknown schedule 'step'"),
        (dict(epochs=0), "epochs must be at least 1"),
        (dict(lr=0.0), "lr must be positive"),
        (dict(patience=0), "patience must be at least 1 or None"),
        (dict(grad_clip=-1.0), "grad_clip must be positive or None"),
    ],
)
def test_bad_config_is_refused(options, message):
    with pytest.raises(FacespaceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**options)


def test_bad_data_and_unsaveable_model_are_refused(data, tmp_path):
    train, _ = data
    with pytest.raises(FacespaceError, match="train_data is empty"):
        fit(make_model(), torch.zeros(0, 1, 8, 8), None, TrainConfig(epochs=1), progress=False)
    with pytest.raises(FacespaceError, match="train_data must be a"):
        fit(make_model(), 3.5, None, TrainConfig(epochs=1), progress=False)
    with pytest.raises(FacespaceError, match="cannot write checkpoints of a Constant.*out_dir=None"):
        fit(Constant(), torch.ones(4, 1), None, TrainConfig(epochs=1), out_dir=tmp_path, progress=False)
    with pytest.raises(FacespaceError, match="cannot resume: .*resume.pt does not exist"):
        fit(make_model(), train, None, TrainConfig(epochs=1), out_dir=tmp_path, resume=True, progress=False)
    assert not list(tmp_path.iterdir())  # nothing half-written
