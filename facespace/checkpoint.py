"""The checkpoint format: one safetensors file holds a model's weights and how to rebuild it.

Format (version 1): a single safetensors file. Its tensors are the model's weights; its header
metadata holds one key, "facespace", a JSON object:

    {"format": "facespace-checkpoint", "format_version": 1, "facespace_version": "0.1.0",
     "kind": "conv", "config": {...}, "step": 1200, "best_val_loss": 0.0041, "extra": {...}}

`extra` carries what pipelines store with a model (a calibrated threshold, training data hash).
This module reads and writes the file and fingerprints models; it knows no model class. Turning a
file into a model (`load_model`) and back (`save_model`) is the model registry's job
(`facespace.models.registry`), which calls this module, never the other way round.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from facespace.errors import CheckpointError
from facespace.files import check_output, write_bytes_atomic
from facespace.version import __version__

FORMAT = "facespace-checkpoint"
FORMAT_VERSION = 1


def write_checkpoint(
    path: str | os.PathLike,
    tensors: dict[str, Any],
    *,
    kind: str,
    config: dict[str, Any],
    step: int = 0,
    best_val_loss: float | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write weights and the metadata that rebuilds their model to `path`, atomically.

    Args:
        path: the `.safetensors` file to write.
        tensors: name -> torch tensor (moved to the CPU and made contiguous here).
        kind: the model kind the registry rebuilds it as.
        config: the model's config as a JSON-able dict.
        step, best_val_loss: where training stood.
        extra: what pipelines keep with the model (crop, threshold, quality reference).
    """
    from safetensors.torch import save

    check_output(path, "model")
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "facespace_version": __version__,
        "kind": kind,
        "config": config,
        "step": int(step),
        "best_val_loss": None if best_val_loss is None else float(best_val_loss),
        "extra": extra or {},
    }
    return write_bytes_atomic(path, save(tensors, metadata={"facespace": json.dumps(meta)}))


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return `(meta, tensors)` of a checkpoint, or raise CheckpointError saying what is wrong."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model file {path} does not exist; train one with `facespace train`, or name a built-in "
                              "model (`facespace models` lists them)")
    if path.is_dir():
        for name in ("best.safetensors", "model.safetensors", "last.safetensors"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise CheckpointError(f"{path} is a folder with no best/model/last.safetensors in it")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for truncated or foreign files
        raise CheckpointError(
            f"{path} is not a readable facespace checkpoint (truncated or another format: {e}); "
            "use the best.safetensors or last.safetensors of a finished run, or retrain"
        ) from None
    if "facespace" not in header:
        raise CheckpointError(f"{path} is a safetensors file but not a facespace checkpoint")
    try:
        meta = json.loads(header["facespace"])
    except json.JSONDecodeError:
        raise CheckpointError(f"{path} has a damaged facespace header; retrain or restore it") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a facespace checkpoint (format {meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {meta['format_version']}, newer than this facespace reads "
            f"({FORMAT_VERSION}); upgrade facespace"
        )
    meta["path"] = str(path)
    return meta, tensors


def file_hash(path: str | os.PathLike, length: int = 16) -> str:
    """Hex SHA-256 prefix of a file's bytes: identifies the exact model an index was built with."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def weights_hash(model: Any, length: int = 16) -> str:
    """Hex SHA-256 prefix of what makes a model's codes: kind, config and weights.

    Unlike `file_hash` it survives rewriting a checkpoint's metadata (a stored threshold), so an
    index or gallery stays usable after calibration. Models without `state_tensors` are
    fingerprinted by their codes of fixed random probes.
    """
    import numpy as np

    h = hashlib.sha256()
    config = getattr(model, "config", None)
    config = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else repr(config)
    h.update(json.dumps([getattr(model, "kind", type(model).__name__), config], sort_keys=True, default=str).encode())
    if callable(getattr(model, "state_tensors", None)):
        for key, t in sorted(model.state_tensors().items()):
            h.update(key.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    else:
        probe = np.random.default_rng(1234).random((4, *model.image_shape), dtype=np.float32)
        h.update(np.round(np.asarray(model.encode(probe), np.float64), 4).tobytes())
    return h.hexdigest()[:length]


def model_hash(model: Any) -> str | None:
    """The hash of the checkpoint a model was loaded from (None for a model never saved)."""
    return getattr(model, "checkpoint_info", {}).get("hash")
