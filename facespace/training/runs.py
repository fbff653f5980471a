"""The run folder `fit` writes, and its live progress on stderr.

    out_dir/
        config.json        the TrainConfig plus what was trained on what
        metrics.csv        one row per epoch (rewritten whole, atomically, after each epoch)
        loss.png           train and validation loss per epoch
        samples.png        the latest sample grid, e.g. originals over reconstructions
        best.safetensors   the model at its best validation loss (`facespace.checkpoint`)
        last.safetensors   the model after the last finished epoch
        resume.pt          optimizer, scheduler, epoch, RNG states: what `resume=True` needs

Every file is written to a temporary name and renamed, so a killed run leaves whole files only.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from facespace.models.registry import save_model
from facespace.errors import FacespaceError
from facespace.files import write_bytes_atomic, write_text_atomic
from facespace.grid import make_grid, save_png

RESUME_FILE = "resume.pt"


def run_info(network: Any, config: Any, world_size: int, n_train: int, n_val: int | None) -> dict[str, Any]:
    """What config.json records: the train config, the model's kind and config, the data sizes."""
    from facespace.version import __version__

    model_config = getattr(network, "config", None)
    return {
        "train": dataclasses.asdict(config),
        "kind": getattr(network, "kind", None),
        "model_config": dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else None,
        "n_train": n_train,
        "n_val": n_val,
        "world_size": world_size,
        "facespace_version": __version__,
        "torch_version": torch.__version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def save_epoch(
    out_dir: Path, network, trainable, optimizer, scheduler, config, state, rngs, improved, sample_fn
) -> None:
    """After an epoch: checkpoints first, then the resume state, then the human-readable files.

    Args:
        network: what the checkpoints hold (`facespace.checkpoint.save_model`).
        trainable: the module the loop trains (the network or a wrapper); its whole state resumes.
        state: the loop's `{epoch, step, best, bad, stopped, history}`.
        rngs: every process's `rng_state()`, in rank order.
        improved: this epoch has the best validation loss so far: overwrite best.safetensors.
        sample_fn: `fn(network) -> images` for samples.png after a validation, or None.
    """
    extra = {**dict(getattr(network, "checkpoint_info", {}).get("extra", {})), "epoch": state["epoch"]}
    best = state["best"] if math.isfinite(state["best"]) else None
    info = {"step": state["step"], "best_val_loss": best, "extra": extra}
    if improved:
        save_model(network, out_dir / "best.safetensors", **info)
    save_model(network, out_dir / "last.safetensors", **info)
    save_resume(out_dir, {
        **state,
        "config": dataclasses.asdict(config),
        "trainable": trainable.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "rng": rngs,
    })
    write_metrics(out_dir, state["history"])
    if sample_fn is not None and "val_loss" in state["history"][-1]:
        was_training = trainable.training
        save_samples(out_dir, sample_fn(network))
        trainable.train(was_training)


def write_config(out_dir: Path, info: dict[str, Any]) -> Path:
    """Write `info` (JSON-able: the train config, model kind and config, data sizes) to config.json."""
    return write_text_atomic(out_dir / "config.json", json.dumps(info, indent=2, default=str) + "\n")


def write_metrics(out_dir: Path, history: list[dict[str, Any]]) -> Path:
    """Write one CSV row per epoch of `history`; columns are every key, in order of first use."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    return write_text_atomic(out_dir / "metrics.csv", buf.getvalue())


def read_metrics(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a metrics.csv, as strings (empty cells where an epoch had no validation)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_losses(out_dir: Path, history: list[dict[str, Any]]) -> Path:
    """Draw train and validation loss per epoch (log scale when positive) to loss.png."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.96)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        points = [(r["epoch"], r[key]) for r in history if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", markersize=3, label=label)
    values = [r[k] for r in history for k in ("train_loss", "val_loss") if r.get(k) is not None]
    if values and min(values) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return write_bytes_atomic(out_dir / "loss.png", buf.getvalue())


def save_samples(out_dir: Path, images: np.ndarray, *, scale: int = 2) -> Path:
    """Write a sample grid to samples.png.

    Args:
        images: `(n, H, W, C)` tiles, or `(rows, cols, H, W, C)` to fix the layout (e.g. row 0
            originals, row 1 reconstructions), float in [0, 1].
    """
    x = np.asarray(images, dtype=np.float32)
    ncols = None
    if x.ndim == 5:
        ncols = x.shape[1]
        x = x.reshape(-1, *x.shape[2:])
    if x.ndim != 4:
        raise FacespaceError(f"sample_fn must return (n, H, W, C) or (rows, cols, H, W, C) images; got {x.shape}")
    return save_png(make_grid(x, ncols=ncols, scale=scale), out_dir / "samples.png")


def reconstruction_sampler(images: np.ndarray, n: int = 8) -> Callable[[Any], np.ndarray]:
    """A `sample_fn` for `fit`: the first `n` of `images` over the network's reconstructions.

    Args:
        images: `(m, H, W, C)` float32 in [0, 1], e.g. validation images.

    Returns:
        `fn(network) -> (2, n, H, W, C)`, calling the network's numpy `encode` / `decode`.
    """
    shown = np.asarray(images[:n], dtype=np.float32)

    def sample(network: Any) -> np.ndarray:
        return np.stack([shown, np.clip(network.decode(network.encode(shown)), 0.0, 1.0)])

    return sample


def save_resume(out_dir: Path, state: dict[str, Any]) -> Path:
    """Write the resume state (tensors, numbers, strings, lists, dicts) atomically."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return write_bytes_atomic(out_dir / RESUME_FILE, buf.getvalue())


def load_resume(out_dir: Path) -> dict[str, Any]:
    """Read the resume state `save_resume` wrote, or say why a run cannot be resumed."""
    path = out_dir / RESUME_FILE
    if not path.exists():
        raise FacespaceError(
            f"cannot resume: {path} does not exist (no epoch of a run finished there); start without resume"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for damaged files
        raise FacespaceError(f"cannot resume: {path} is damaged ({e}); start the run again without resume") from None


def rng_state() -> dict[str, Any]:
    """The torch, numpy and Python random states, as types `torch.load(weights_only=True)` accepts."""
    import random

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": list(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    import random

    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


@contextmanager
def progress_bar(enabled: bool, total: int, epochs: int) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr with the live loss, and a logger of one line per epoch.

    Yields `report(advance=0, loss=None, epoch=None, line=None)`: moves the bar, shows a loss,
    starts an epoch (resetting the bar), or prints a log line above it.
    """
    if not enabled:
        yield lambda **_: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("", total=total, loss="-")

        def report(advance: int = 0, loss: float | None = None, epoch: int | None = None, line: str | None = None):
            if epoch is not None:
                bar.reset(task, total=total, description=f"epoch {epoch}/{epochs}", loss="-")
            if advance or loss is not None:
                bar.update(task, advance=advance, **({} if loss is None else {"loss": f"{loss:.5g}"}))
            if line is not None:
                bar.console.print(line, highlight=False)

        yield report


def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.8g}"
    return value
