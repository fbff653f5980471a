"""One generic training loop for every trainable model, alone or under torchrun.

`fit` reads top to bottom: seed, build loaders, optimizer and schedule, (resume), then per epoch:
step, check, clip, log, validate under `torch.no_grad()`, keep best and last checkpoints, write the
run folder. Batches are opaque: the loop hands each one to `trainable.loss(batch)`.

Example:
    >>> result = fit(model, train_x, val_x, TrainConfig(epochs=5), out_dir="runs/a")  # doctest: +SKIP
    >>> result.best_path                                                               # doctest: +SKIP
    PosixPath('runs/a/best.safetensors')

Under `torchrun --nproc_per_node N` the same call trains with DistributedDataParallel; each process
takes `batch_size` examples per step (so N times as many per optimizer step) and only rank 0
writes files and progress.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from facespace.training import distributed

from facespace.training import runs
from facespace.errors import FacespaceError

OPTIMIZERS = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax, "adamw": torch.optim.AdamW}
SCHEDULES = ("none", "onecycle", "cosine")
# fields a resumed run may change; the rest must match the interrupted run
_RESUMABLE_CHANGES = {"epochs", "patience", "threads", "val_every", "log_every"}


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Every field maps one-to-one onto a `facespace train` option."""

    epochs: int = 10  # passes over the training data
    batch_size: int = 64  # examples per step, per process
    lr: float = 1e-3  # learning rate (the peak one under a schedule)
    optimizer: str = "adam"  # adam | adamax | adamw
    schedule: str = "none"  # none | onecycle | cosine, stepped every batch
    weight_decay: float = 0.0  # L2 (adam, adamax) or decoupled (adamw) weight decay
    grad_clip: float | None = 1.0  # largest global gradient norm; None: no clipping
    patience: int | None = None  # stop after this many validations without improvement; None: never
    seed: int = 0  # shuffling and in-loop randomness (noise, dropout); seed the model's init yourself
    threads: int | None = None  # torch.set_num_threads; None: leave torch's choice
    val_every: int = 1  # validate every N epochs, and always after the last
    log_every: int = 50  # steps between live-loss updates of the progress bar
    channels_last: bool = False  # NHWC memory layout for 4-d tensors (faster convolutions on CPU)
    bf16: bool = False  # bfloat16 autocast for the forward pass

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise FacespaceError(f"unknown optimizer {self.optimizer!r}; expected one of: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise FacespaceError(f"unknown schedule {self.schedule!r}; expected one of: {', '.join(SCHEDULES)}")
        for name in ("epochs", "batch_size", "val_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise FacespaceError(f"{name} must be at least 1; got {getattr(self, name)}")
        if not self.lr > 0:
            raise FacespaceError(f"lr must be positive; got {self.lr}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise FacespaceError(f"grad_clip must be positive or None (no clipping); got {self.grad_clip}")
        if self.patience is not None and self.patience < 1:
            raise FacespaceError(f"patience must be at least 1 or None (no early stopping); got {self.patience}")


@dataclass
class FitResult:
    """What `fit` did.

    Attributes:
        best_val_loss: the lowest validation loss (training loss when there was no validation data).
        epochs_run: epochs finished, counting those before a resume.
        history: one dict per epoch: epoch, step, lr, train_loss, val_loss, seconds, the model's metrics.
        best_path: `out_dir/best.safetensors`, or None without `out_dir`.
        last_path: `out_dir/last.safetensors`, or None without `out_dir`.
    """

    best_val_loss: float | None
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    best_path: Path | None = None
    last_path: Path | None = None


def fit(
    trainable: nn.Module,
    train_data: Any,
    val_data: Any = None,
    config: TrainConfig = TrainConfig(),
    *,
    out_dir: str | Path | None = None,
    collate_fn: Callable | None = None,
    progress: bool = True,
    resume: bool = False,
    sample_fn: Callable[[Any], np.ndarray] | None = None,
) -> FitResult:
    """Train `trainable` by minimising `trainable.loss(batch)`.

    Args:
        trainable: an `nn.Module` with `loss(batch) -> (scalar loss tensor, {name: float})`. When it
            wraps a network (`trainable.network`, e.g. a denoising objective), that network is saved.
        train_data: a torch `Dataset`, or a `(n, C, H, W)` tensor / array (batches are then
            `(B, C, H, W)` float tensors).
        val_data: the same kind of data for validation, or None (then the training loss decides
            which checkpoint is best and when to stop).
        config: a `TrainConfig`.
        out_dir: the run folder (see `facespace.training.runs`); None writes nothing.
        collate_fn: builds a batch from a list of examples (torch's default stacks them).
        progress: a progress bar with live loss and one log line per epoch on stderr.
        resume: continue the run in `out_dir` from its last finished epoch.
        sample_fn: `fn(network) -> images` for `out_dir/samples.png` after each validation, e.g.
            `facespace.training.runs.reconstruction_sampler(val_images)`.

    Returns:
        A `FitResult`. `trainable` keeps the last epoch's weights; the best are in `best_path`.

    Raises:
        FacespaceError: bad config or data; NaN or infinite inputs, loss or gradients (training
            stops; the checkpoints of the last good epoch stay on disk); nothing to resume.
    """
    dist = distributed.setup()
    try:
        return _fit(trainable, train_data, val_data, config, dist, out_dir, collate_fn, progress, resume, sample_fn)
    finally:
        distributed.teardown(dist)


def _fit(trainable, train_data, val_data, config, dist, out_dir, collate_fn, progress, resume, sample_fn):
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(out_dir) if out_dir is not None else None
    network = getattr(trainable, "network", trainable)
    if out is not None:
        _check_saveable(network)
    trainable.to(dist.device)
    if config.channels_last:
        trainable.to(memory_format=torch.channels_last)
    train_set = _as_dataset(train_data, "train_data", batched=collate_fn is None)
    val_set = None if val_data is None else _as_dataset(val_data, "val_data", batched=collate_fn is None)
    sampler = DistributedSampler(train_set, dist.world_size, dist.rank, shuffle=True, seed=config.seed)
    loader = _loader(train_set, config.batch_size, sampler, collate_fn)
    opt = OPTIMIZERS[config.optimizer](trainable.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = _schedule(opt, config, len(loader) * config.epochs)
    state = {"epoch": 0, "step": 0, "best": math.inf, "bad": 0, "stopped": False, "history": []}
    _seed(config.seed + dist.rank)
    if resume:
        state = _resume(out, trainable, opt, sched, config, dist)
    elif out is not None and dist.is_main:
        n_val = None if val_set is None else len(val_set)
        runs.write_config(out, runs.run_info(network, config, dist.world_size, len(train_set), n_val))
    model = distributed.wrap(_Objective(trainable), dist)
    best_path, last_path = (None, None) if out is None else (out / "best.safetensors", out / "last.safetensors")

    last_plot = time.perf_counter()  # the first plot comes after _PLOT_EVERY_S or at the end
    with runs.progress_bar(progress and dist.is_main, len(loader), config.epochs) as report:
        for epoch in range(state["epoch"] + 1, config.epochs + 1):
            if state["stopped"]:
                break
            report(epoch=epoch)
            sampler.set_epoch(epoch)
            trainable.train()
            started, sums = time.perf_counter(), {}
            for i, batch in enumerate(loader):
                batch = distributed.to_device(batch, dist.device, config.channels_last)
                with torch.autocast(dist.device.type, dtype=torch.bfloat16, enabled=config.bf16):
                    loss, metrics = model(batch)
                where = f"at step {state['step'] + 1} (epoch {epoch}, batch {i + 1})"
                _check_step(batch, loss, where, dist)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                norm = nn.utils.clip_grad_norm_(trainable.parameters(), config.grad_clip or math.inf)
                if not math.isfinite(norm):  # the same on every rank: gradients are all-reduced
                    raise FacespaceError(f"gradients became {float(norm)} {where}: {_DIVERGED}")
                opt.step()
                if sched is not None:
                    sched.step()
                state["step"] += 1
                _accumulate(sums, distributed.batch_len(batch), {"loss": loss.item(), **metrics})
                if state["step"] % config.log_every == 0 or i + 1 == len(loader):
                    report(advance=0, loss=sums["loss"] / sums["_n"])
                report(advance=1)
            train_seconds = time.perf_counter() - started

            row = {"epoch": epoch, "step": state["step"], "lr": opt.param_groups[0]["lr"]}
            row.update({f"train_{k}": v for k, v in distributed.weighted_means(sums, dist).items()})
            monitor = row["train_loss"]
            if val_set is not None and (epoch % config.val_every == 0 or epoch == config.epochs):
                row.update({f"val_{k}": v for k, v in _evaluate(trainable, val_set, config, collate_fn, dist).items()})
                monitor = row["val_loss"]
            elif val_set is not None:
                monitor = None
            # examples_per_s counts training steps only; seconds includes validation
            row.update(seconds=time.perf_counter() - started, examples_per_s=row.pop("train__n") / train_seconds)
            improved = monitor is not None and monitor < state["best"]
            if improved:
                state["best"], state["bad"] = monitor, 0
            elif monitor is not None:
                state["bad"] += 1
                state["stopped"] = config.patience is not None and state["bad"] >= config.patience
            state["epoch"] = epoch
            state["history"].append(row)

            if out is not None:
                rngs = distributed.gather(runs.rng_state(), dist)  # every rank's, for an exact resume
                if dist.is_main:
                    runs.save_epoch(out, network, trainable, opt, sched, config, state, rngs, improved, sample_fn)
                    final = state["stopped"] or epoch == config.epochs
                    if final or time.perf_counter() - last_plot > _PLOT_EVERY_S:  # drawing takes ~0.5 s
                        runs.plot_losses(out, state["history"])
                        last_plot = time.perf_counter()
            report(line=_log_line(row, config.epochs, improved, state["stopped"]))

    best = state["best"] if math.isfinite(state["best"]) else None
    return FitResult(best, state["epoch"], state["history"], best_path, last_path)


_PLOT_EVERY_S = 30.0  # loss.png is redrawn at most this often, and after the last epoch
_DIVERGED = "training diverged; lower lr, keep grad_clip on, or check the model's loss"


class _Objective(nn.Module):
    """Makes `loss` the forward pass, so DistributedDataParallel syncs gradients through it."""

    def __init__(self, trainable: nn.Module):
        super().__init__()
        self.trainable = trainable

    def forward(self, batch):
        return self.trainable.loss(batch)


def _check_step(batch, loss, where, dist) -> None:
    """Stop on non-finite inputs or loss: every rank decides together (no rank left waiting)."""
    local = [not distributed.all_finite(batch), not torch.isfinite(loss).all().item()]
    bad_input, bad_loss = distributed.any_all(local, dist)
    if bad_input:
        raise FacespaceError(f"the training data contain NaN or infinite values {where}; clean or drop those examples")
    if bad_loss:
        value = loss.item()
        shown = value if not math.isfinite(value) else "non-finite on another process"
        raise FacespaceError(f"the loss became {shown} {where}: {_DIVERGED}")


def _evaluate(trainable, val_set, config, collate_fn, dist) -> dict[str, float]:
    """Mean loss and metrics over `val_set` (each process takes its share), weighted by batch size."""
    sampler = DistributedSampler(val_set, dist.world_size, dist.rank, shuffle=False)
    loader = _loader(val_set, config.batch_size, sampler, collate_fn)
    trainable.eval()
    sums: dict[str, float] = {}
    with torch.no_grad(), torch.autocast(dist.device.type, dtype=torch.bfloat16, enabled=config.bf16):
        for batch in loader:
            batch = distributed.to_device(batch, dist.device, config.channels_last)
            loss, metrics = trainable.loss(batch)
            _accumulate(sums, distributed.batch_len(batch), {"loss": loss.item(), **metrics})
    means = distributed.weighted_means(sums, dist)
    means.pop("_n")
    if not math.isfinite(means["loss"]):
        raise FacespaceError(
            f"the validation loss became {means['loss']}: the validation data contain NaN or infinite "
            f"values, or {_DIVERGED}"
        )
    return means


def _resume(out, trainable, opt, sched, config, dist) -> dict[str, Any]:
    """Load the state of the interrupted run in `out` into the model, optimizer and schedule."""
    if out is None:
        raise FacespaceError("resume needs out_dir: the folder of the run to continue")
    saved = runs.load_resume(out)
    changed = sorted(
        k for k, v in dataclasses.asdict(config).items()
        if k not in _RESUMABLE_CHANGES and saved["config"].get(k) != v
    )
    if config.schedule != "none" and saved["config"]["epochs"] != config.epochs:
        changed.append("epochs (the learning-rate schedule spans them)")
    if config.schedule != "none" and len(saved["rng"]) != dist.world_size:
        changed.append(f"number of processes ({len(saved['rng'])} before; the schedule counts their steps)")
    if changed:
        raise FacespaceError(
            f"cannot resume {out} with a different {', '.join(changed)}; use the interrupted run's "
            "settings, or start a new run in another folder"
        )
    try:
        trainable.load_state_dict(saved["trainable"])
    except RuntimeError as e:
        raise FacespaceError(
            f"cannot resume {out}: it holds the state of another model ({str(e).splitlines()[0]}); "
            "build the same model as the interrupted run, or start a new run in another folder"
        ) from None
    opt.load_state_dict(saved["optimizer"])
    if sched is not None:
        sched.load_state_dict(saved["scheduler"])
    rngs = saved["rng"]
    if len(rngs) == dist.world_size:
        runs.set_rng_state(rngs[dist.rank])
    else:  # another number of processes: fresh but still seeded randomness
        _seed(config.seed + dist.rank + 1000 * saved["epoch"])
    return {k: saved[k] for k in ("epoch", "step", "best", "bad", "stopped", "history")}


def _schedule(opt, config, total_steps):
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=max(total_steps, 1))
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    return None


def _seed(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _Rows(Dataset):
    """A `(n, ...)` tensor as a dataset of its rows."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __len__(self) -> int:
        return len(self.tensor)

    def __getitem__(self, i):
        return self.tensor[i]


class _RowBatches(_Rows):
    """`_Rows` whose DataLoader fetches a whole batch with one indexing op (no per-row collation)."""

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return self.tensor[torch.as_tensor(indices)]


def _loader(dataset: Dataset, batch_size: int, sampler, collate_fn) -> DataLoader:
    if isinstance(dataset, _RowBatches):  # its batches are tensors already
        collate_fn = lambda batch: batch  # noqa: E731
    return DataLoader(dataset, batch_size, sampler=sampler, collate_fn=collate_fn)


def _as_dataset(data: Any, what: str, batched: bool) -> Dataset:
    """A torch Dataset of `data`; a tensor's rows are fetched a batch at a time when `batched`."""
    if isinstance(data, np.ndarray):
        data = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    if isinstance(data, torch.Tensor):
        if data.ndim < 1:
            raise FacespaceError(f"{what} must be a (n, C, H, W) tensor or a torch Dataset; got a scalar")
        data = _RowBatches(data) if batched else _Rows(data)
    if not hasattr(data, "__getitem__") or not hasattr(data, "__len__"):
        raise FacespaceError(f"{what} must be a (n, C, H, W) tensor or a torch Dataset; got {type(data).__name__}")
    if len(data) == 0:
        raise FacespaceError(f"{what} is empty; give it at least one example")
    return data


def _check_saveable(network: Any) -> None:
    missing = [a for a in ("kind", "config", "state_tensors") if not hasattr(network, a)]
    if missing:
        raise FacespaceError(
            f"cannot write checkpoints of a {type(network).__name__}: it lacks {', '.join(missing)}; "
            "subclass facespace.models.base.TorchEncoder and @register_model it, or pass out_dir=None"
        )


def _accumulate(sums: dict[str, float], n: int, values: dict[str, float]) -> None:
    """Add a batch of `n` examples' mean `values` to per-example sums."""
    sums["_n"] = sums.get("_n", 0) + n
    for k, v in values.items():
        sums[k] = sums.get(k, 0.0) + float(v) * n


def _log_line(row: dict[str, Any], epochs: int, improved: bool, stopped: bool) -> str:
    val = f"  val {row['val_loss']:.5g}" if "val_loss" in row else ""
    mark = "  *best" if improved else ""
    stop = "  (early stop: no improvement)" if stopped else ""
    return (
        f"epoch {row['epoch']}/{epochs}  train {row['train_loss']:.5g}{val}  lr {row['lr']:.3g}  "
        f"{row['seconds']:.1f}s  {row['examples_per_s']:.0f}/s{mark}{stop}"
    )
