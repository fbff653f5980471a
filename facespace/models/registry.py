"""The model registry: kind -> class, and the two verbs that cross the checkpoint format.

A model class registers itself with `@register_model`; it has a class attribute `kind`, a frozen
dataclass `config`, `state_tensors() -> dict[str, torch.Tensor]` and
`from_state(config: dict, tensors: dict) -> model`. `load_model` reads a checkpoint
(`facespace.checkpoint.read_checkpoint`) and asks the registry for the class; `save_model`
writes one. `resolve_model` is the one place that turns what a user names (a model object, a
checkpoint path or run folder, a built-in name, `pixels:SIZE[:grey]`) into a model.

Built-in models ship in `facespace/models/builtin/`: `<name>.safetensors` beside its model card
`<name>.json` (training data, recipe, measured numbers, fingerprint). `load_model("faces-id")` loads
one by name; a path that exists wins over a built-in name; a built-in file whose weights no longer
match its card's fingerprint is refused.

Example:
    >>> from facespace.models.pixels import PixelEncoder
    >>> resolve_model("pixels:8:grey").image_shape
    (8, 8, 1)
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pkgutil
from pathlib import Path
from typing import Any

from facespace.checkpoint import file_hash, read_checkpoint, weights_hash, write_checkpoint
from facespace.errors import CheckpointError, FacespaceError

_REGISTRY: dict[str, type] = {}
BUILTIN_DIR = Path(__file__).parent / "builtin"
# Models that ship no weights of facespace's: they come with an optional extra (a pip package holds
# the weights). Each has a card in `extras/<name>.json` naming the loader ("module:function") and
# the options it is called with.
EXTRAS_DIR = Path(__file__).parent / "extras"


def register_model(cls: type) -> type:
    """Class decorator: make `cls` loadable by `load_model` under `cls.kind`."""
    _REGISTRY[cls.kind] = cls
    return cls


def registered_kinds() -> list[str]:
    """Every model kind `load_model` can rebuild."""
    _import_model_modules()
    return sorted(_REGISTRY)


def _import_model_modules() -> None:
    """Import every module of `facespace.models`; each registers its classes on import."""
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
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
    """Write `model` to `path` (atomically) as one safetensors file. Returns the path.

    Args:
        model: a registered model (it has `kind`, `config`, `state_tensors()`).
        path: the `.safetensors` file.
        step, best_val_loss: where training stood.
        extra: what to keep with the model; default: what it was loaded with.
    """
    if extra is None:
        extra = dict(getattr(model, "checkpoint_info", {}).get("extra", {}))
    return write_checkpoint(path, model.state_tensors(), kind=model.kind, config=dataclasses.asdict(model.config),
                            step=step, best_val_loss=best_val_loss, extra=extra)


def builtin_names() -> list[str]:
    """The built-in models this installation ships (each has a model card)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.json")) if BUILTIN_DIR.is_dir() else []


def extra_names() -> list[str]:
    """Models that an optional extra provides (`dlib`): usable where the extra is installed."""
    return sorted(p.stem for p in EXTRAS_DIR.glob("*.json")) if EXTRAS_DIR.is_dir() else []


def builtin_card(name: str) -> dict[str, Any]:
    """A model's card (built-in or from an extra): training data, recipe, measured numbers.

    Raises:
        CheckpointError: an unknown name (the message lists the names that exist).
    """
    if name in extra_names():
        return json.loads((EXTRAS_DIR / f"{name}.json").read_text())
    if name not in builtin_names():
        raise CheckpointError(f"unknown model {name!r}; built-in models: {', '.join(builtin_names()) or 'none'}; "
                              f"with an optional extra: {', '.join(extra_names()) or 'none'}; "
                              "or give a checkpoint file or run folder")
    return json.loads((BUILTIN_DIR / f"{name}.json").read_text())


# The identity model a command uses when none is named: the first of these this installation has.
# dlib's pretrained encoder (the `[dlib]` extra, which `make demo` and `make test` install) names
# 93/100 held-out grey portraits at 0/100 strangers; faces-id, trained on LFW alone, 26/100 at 1/100
# (benchmarks/results/heldout_identity.md). faces-id ships in the package, so a core install still
# has one.
IDENTITY_MODELS = ("dlib", "faces-id")


def default_identity_model() -> str:
    """The name of the identity model used when none is named: `dlib` where its extra is installed,
    else the built-in `faces-id`.

    Example:
        >>> default_identity_model() in IDENTITY_MODELS
        True
    """
    for name in IDENTITY_MODELS[:-1]:
        if extra_available(name):
            return name
    return IDENTITY_MODELS[-1]


def function_of(spec: str) -> Any:
    """The function a card names as "module:function"."""
    module, function = spec.split(":")
    return getattr(importlib.import_module(module), function)


def extra_available(name: str) -> bool:
    """True when the optional extra that provides model `name` is installed here."""
    return bool(function_of(builtin_card(name)["check"])())


def _load_extra(name: str) -> Any:
    """Build a model an optional extra provides, by its card's loader and options."""
    card = builtin_card(name)
    model = function_of(card["loader"])(**card.get("options", {}))
    model.checkpoint_info["builtin"] = name
    # measured facts the card keeps for the model (a verification threshold, impostor distances)
    extra = json.loads(json.dumps(card.get("extra", {})))  # a copy: the cached card stays as read
    cohort = (extra.get("gallery") or {}).get("cohort")
    if cohort and cohort.get("file"):  # a file beside the card (S-norm's cohort of outside faces)
        cohort["path"] = str(EXTRAS_DIR / cohort["file"])
    model.checkpoint_info.setdefault("extra", {}).update(extra)
    return model


def _is_name(spec: str) -> bool:
    """Text that names a model rather than a file: no folder, no suffix."""
    return os.sep not in spec and "/" not in spec and not Path(spec).suffix


def load_model(path: str | os.PathLike, *, kind: str | None = None) -> Any:
    """Rebuild a model from one checkpoint file (or a run folder holding best.safetensors), or a
    built-in model by name.

    Args:
        path: a `.safetensors` checkpoint written by `save_model`, a run folder, or a built-in name
            (`builtin_names()`); a path that exists wins over a name.
        kind: when given, refuse a checkpoint of another kind.

    Returns:
        The model, in eval mode, with `checkpoint_info` (step, best_val_loss, extra, path, hash;
        `builtin` for a built-in model).

    Raises:
        CheckpointError: a missing, truncated or foreign file; an unknown name (listing the built-in
            ones); a built-in file whose weights do not match its card's fingerprint.
    """
    spec = str(path)
    if not os.path.exists(spec) and spec in extra_names():
        return _load_extra(spec)
    if not os.path.exists(spec) and _is_name(spec):
        card = builtin_card(spec)
        model = load_model(BUILTIN_DIR / f"{spec}.safetensors", kind=kind)
        if weights_hash(model) != card["fingerprint"]:
            raise CheckpointError(f"the built-in model {spec!r} ({BUILTIN_DIR / f'{spec}.safetensors'}) does not match "
                                  "its recorded fingerprint (altered or damaged); reinstall facespace")
        model.checkpoint_info["builtin"] = spec
        # facts measured after shipping live in the card (a quality reference): the weights file stays as shipped
        model.checkpoint_info.setdefault("extra", {}).update(json.loads(json.dumps(card.get("extra", {}))))
        return model
    meta, tensors = read_checkpoint(path)
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise CheckpointError(f"{meta['path']}: its weights {key!r} hold NaN or infinite values (a diverged or "
                                  "damaged model); use an earlier checkpoint of the run, or retrain")
    _import_model_modules()
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


def resolve_model(model: Any) -> Any:
    """A model from what a user names: a model object (returned as it is), a checkpoint file or run
    folder, or `pixels[:SIZE[:grey]]` for the raw-pixel baseline.

    Raises:
        FacespaceError: a malformed `pixels:` spec; CheckpointError: an unreadable file.
    """
    if not isinstance(model, (str, os.PathLike)):
        return model
    spec = str(model)
    if spec.startswith("pixels") and not os.path.exists(spec):
        from facespace.models.pixels import PixelEncoder

        parts = spec.split(":")
        try:
            size = int(parts[1]) if len(parts) > 1 else 32
        except ValueError:
            raise FacespaceError(f"bad model spec {spec!r}; expected pixels:SIZE, e.g. pixels:32") from None
        return PixelEncoder(size=size, channels=1 if "grey" in parts[2:] else 3)
    return load_model(spec)
