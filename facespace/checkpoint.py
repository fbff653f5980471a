"""One checkpoint file rebuilds a model.

Format (version 1): a single safetensors file. Its tensors are the model's weights; its header
metadata holds one key, "facespace", a JSON object:

    {"format": "facespace-checkpoint", "format_version": 1, "facespace_version": "0.1.0",
     "kind": "conv", "config": {...}, "step": 1200, "best_val_loss": 0.0041, "extra": {...}}

`extra` carries what pipelines store with a model (a calibrated threshold, training data hash).
A model class registers itself with `@register_model`, has a class attribute `kind`, a frozen
dataclass `config`, `state_tensors() -> dict[str, torch.Tensor]` and
`from_state(config: dict, tensors: dict) -> model`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from facespace.errors import CheckpointError
from facespace.files import write_bytes_atomic

FORMAT = "facespace-checkpoint"
FORMAT_VERSION = 1
_REGISTRY: dict[str, type] = {}


def register_model(cls: type) -> type:
    """Class decorator: make `cls` loadable by `load_model` under `cls.kind`."""
    _REGISTRY[cls.kind] = cls
    return cls


def registered_kinds() -> list[str]:
    _ensure_registry()
    return sorted(_REGISTRY)


def _ensure_registry() -> None:
    """Import every module of `facespace.models`; each registers its classes on import."""
    import importlib
    import pkgutil

    import facespace.models

    for info in pkgutil.iter_modules(facespace.models.__path__):
        importlib.import_module(f"facespace.models.{info.name}")


def config_from_dict(config_cls: type, values: dict[str, Any]):
    """Build a frozen config dataclass, refusing fields it does not know."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise CheckpointError(
            f"{config_cls.__name__} has no field(s) {', '.join(unknown)}; the file was written by "
            "another facespace version: upgrade facespace or retrain"
        )
    cooked = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_cls(**cooked)


def save_model(
    model: Any,
    path: str | os.PathLike,
    *,
    step: int = 0,
    best_val_loss: float | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `model` to `path` (atomically) as one safetensors file. Returns the path."""
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_tensors().items()}
    if extra is None:
        extra = dict(getattr(model, "checkpoint_info", {}).get("extra", {}))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "facespace_version": _version(),
        "kind": model.kind,
        "config": dataclasses.asdict(model.config),
        "step": int(step),
        "best_val_loss": None if best_val_loss is None else float(best_val_loss),
        "extra": extra,
    }
    data = save(tensors, metadata={"facespace": json.dumps(meta)})
    return write_bytes_atomic(path, data)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return `(meta, tensors)` of a checkpoint, or raise CheckpointError saying what is wrong."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model file {path} does not exist; train one with `facespace train`")
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


def load_model(path: str | os.PathLike, *, kind: str | None = None) -> Any:
    """Rebuild a model from one checkpoint file (or a run folder holding best.safetensors).

    Args:
        path: a `.safetensors` checkpoint written by `save_model`, or a run folder.
        kind: when given, refuse a checkpoint of another kind.

    Returns:
        The model, in eval mode, with `checkpoint_info` (step, best_val_loss, extra, path, hash).
    """
    meta, tensors = read_checkpoint(path)
    _ensure_registry()
    found = meta.get("kind")
    if kind is not None and found != kind:
        raise CheckpointError(f"{meta['path']} holds a {found!r} model, not the {kind!r} model asked for")
    if found not in _REGISTRY:
        raise CheckpointError(
            f"{meta['path']} holds a model of unknown kind {found!r}; known: {', '.join(sorted(_REGISTRY))}"
        )
    model = _REGISTRY[found].from_state(meta["config"], tensors)
    if hasattr(model, "eval"):
        model.eval()
    meta["hash"] = file_hash(meta["path"])
    model.checkpoint_info = meta
    return model


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


def _version() -> str:
    from facespace import __version__

    return __version__
